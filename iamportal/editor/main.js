// The policy editor: a JSON editor over every textarea marked data-policy-editor,
// with line numbers, highlighting, bracket matching, the linter's findings marked
// at their JSON Pointer locations, and completion of IAM actions. The textarea stays
// the form's field (kept in step on every change) and the page without JavaScript.

import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { json } from "@codemirror/lang-json";
import {
  bracketMatching,
  defaultHighlightStyle,
  foldGutter,
  indentOnInput,
  syntaxHighlighting,
  syntaxTree,
} from "@codemirror/language";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { EditorState } from "@codemirror/state";
import {
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
} from "@codemirror/view";

// The page's Content-Security-Policy refuses style attributes, which the editor
// sets for its layout (tab size, gutter heights). The same styles set through the
// CSSOM are allowed: style attributes become cssText while the editor is loaded.
const setAttribute = Element.prototype.setAttribute;
Element.prototype.setAttribute = function (name, value) {
  if (String(name).toLowerCase() === "style" && this.style) {
    this.style.cssText = String(value);
    return;
  }
  setAttribute.call(this, name, value);
};

const PUNCTUATION = new Set(["{", "}", "[", "]", ",", ":", "⚠"]);
const MAX_OPTIONS = 200;
let actionsPromise = null;

function values(node) {
  const found = [];
  for (let child = node.firstChild; child; child = child.nextSibling) {
    if (!PUNCTUATION.has(child.name)) found.push(child);
  }
  return found;
}

function unquote(state, node) {
  try {
    return JSON.parse(state.sliceDoc(node.from, node.to));
  } catch {
    return null;
  }
}

// The range of the value a JSON Pointer (RFC 6901) names, or null.
export function pointerRange(state, pointer) {
  let node = syntaxTree(state).topNode.firstChild;
  if (!node) return null;
  const tokens = pointer === "" ? [] : pointer.replace(/^\//, "").split("/");
  for (const raw of tokens) {
    const token = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (node.name === "Object") {
      const property = values(node).find((p) => {
        const name = p.getChild("PropertyName");
        return name && unquote(state, name) === token;
      });
      if (!property) return { from: node.from, to: node.to };
      const inner = values(property).filter((child) => child.name !== "PropertyName");
      node = inner.length ? inner[inner.length - 1] : property;
    } else if (node.name === "Array") {
      const items = values(node);
      const index = Number(token);
      if (!Number.isInteger(index) || !items[index]) return { from: node.from, to: node.to };
      node = items[index];
    } else {
      break;
    }
  }
  return { from: node.from, to: node.to };
}

function findingsOf(container) {
  if (!container) return [];
  return Array.from(container.querySelectorAll("[data-location]")).map((item) => ({
    location: item.dataset.location || "",
    severity: item.dataset.severity || "warning",
    message: (item.textContent || "").replace(/\s+/g, " ").trim(),
  }));
}

function showFindings(view, container) {
  const diagnostics = [];
  for (const finding of findingsOf(container)) {
    const range = pointerRange(view.state, finding.location) || { from: 0, to: 0 };
    diagnostics.push({
      from: range.from,
      to: Math.max(range.to, range.from),
      severity: { error: "error", warning: "warning" }[finding.severity] || "info",
      message: finding.message,
    });
  }
  view.dispatch(setDiagnostics(view.state, diagnostics));
}

function actions(url) {
  if (!actionsPromise) {
    actionsPromise = fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : { actions: [] }))
      .then((data) => data.actions || [])
      .catch(() => []);
  }
  return actionsPromise;
}

// Whether the string at `pos` is an action: a value of Action or NotAction.
function inActionList(state, pos) {
  let node = syntaxTree(state).resolveInner(pos, -1);
  if (node.name !== "String") return false;
  let parent = node.parent;
  if (parent && parent.name === "Array") parent = parent.parent;
  if (!parent || parent.name !== "Property") return false;
  const name = parent.getChild("PropertyName");
  const key = name && unquote(state, name);
  return key === "Action" || key === "NotAction";
}

function actionCompletion(url) {
  return async (context) => {
    const typed = context.matchBefore(/"[A-Za-z0-9:*-]*/);
    if (!typed || !inActionList(context.state, context.pos)) return null;
    const prefix = typed.text.slice(1).toLowerCase();
    if (!prefix && !context.explicit) return null;
    const names = await actions(url);
    const options = [];
    for (const name of names) {
      if (name.toLowerCase().startsWith(prefix)) {
        options.push({ label: name, type: "keyword" });
        if (options.length >= MAX_OPTIONS) break;
      }
    }
    return { from: typed.from + 1, options, validFor: /^[A-Za-z0-9:*-]*$/ };
  };
}

function attach(textarea) {
  const findingsSelector = textarea.dataset.findings || "";
  const view = new EditorView({
    parent: textarea.parentNode,
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        foldGutter(),
        drawSelection(),
        history(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        highlightActiveLine(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        json(),
        lintGutter(),
        autocompletion({ override: [actionCompletion(textarea.dataset.actionsUrl || "")] }),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap, indentWithTab]),
        EditorView.editorAttributes.of({ class: "policy-editor" }),
        EditorView.contentAttributes.of({ "aria-label": textarea.getAttribute("aria-label") || "Policy JSON" }),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged) return;
          textarea.value = update.state.doc.toString();
          // The textarea's own listeners (the live lint, the character counter) see it.
          textarea.dispatchEvent(new Event("input", { bubbles: true }));
        }),
      ],
    }),
  });
  textarea.parentNode.insertBefore(view.dom, textarea.nextSibling);
  textarea.hidden = true;
  textarea.classList.add("policy-editor-source");
  const refresh = () => showFindings(view, findingsSelector && document.querySelector(findingsSelector));
  refresh();
  document.body.addEventListener("htmx:afterSettle", refresh);
  // A label for the textarea focuses the editor instead.
  if (textarea.id) {
    for (const label of document.querySelectorAll(`label[for="${CSS.escape(textarea.id)}"]`)) {
      label.addEventListener("click", (event) => {
        event.preventDefault();
        view.focus();
      });
    }
  }
  return view;
}

function start() {
  for (const textarea of document.querySelectorAll("textarea[data-policy-editor]")) {
    if (!textarea.classList.contains("policy-editor-source")) attach(textarea);
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
// Pages swapped in by htmx (boosted links and forms) get editors too.
document.addEventListener("htmx:load", start);
