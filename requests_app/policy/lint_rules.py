"""What the policy linter checks, as data: its rules with their default
severities and titles, the escalation paths, the sensitive action lists and
the policy language's elements and operators."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

Severity = Literal["error", "warning", "info"]

SIZE_WARNING_RATIO = 0.9

LINT_MAX_CHARS = 100_000
"""Beyond this many characters a document is only reported as too large, not
read further: every entry point bounds its input below it already (the API's
body, the editor, a change's payload), this keeps any future one bounded too."""

RULES: Mapping[str, tuple[Severity, str]] = MappingProxyType(
    {
        # Structure
        "invalid-json": ("error", "The policy is not valid JSON"),
        "duplicate-key": ("error", "A key appears twice in one object"),
        "document-not-object": ("error", "The policy is not a JSON object"),
        "unknown-document-key": ("error", "Unknown top-level element"),
        "version-missing": ("warning", "Version is missing"),
        "version-outdated": ("warning", "Old policy language version"),
        "version-invalid": ("error", "Invalid policy language version"),
        "statement-missing": ("error", "Statement is missing"),
        "statement-wrong-type": ("error", "Statement must be an object or a list"),
        "statement-empty": ("error", "Statement has no statements"),
        "statement-not-object": ("error", "A statement must be an object"),
        "unknown-statement-key": ("error", "Unknown statement element"),
        "sid-invalid": ("error", "Invalid Sid"),
        "duplicate-sid": ("error", "Duplicate Sid"),
        "effect-missing": ("error", "Effect is missing"),
        "effect-invalid": ("error", "Effect must be Allow or Deny"),
        "action-missing": ("error", "No actions"),
        "action-and-notaction": ("error", "Both Action and NotAction"),
        "resource-missing": ("error", "No resources"),
        "resource-and-notresource": ("error", "Both Resource and NotResource"),
        "principal-in-identity-policy": ("error", "Principal in an identity policy"),
        "wrong-type": ("error", "Wrong type"),
        "condition-malformed": ("error", "Malformed condition"),
        "unknown-condition-operator": ("error", "Unknown condition operator"),
        "unknown-condition-key": ("warning", "Condition key not in the IAM reference"),
        # Actions
        "malformed-action": ("error", "Malformed action"),
        "unknown-service": ("error", "Unknown AWS service"),
        "unknown-action": ("warning", "Action not in the IAM reference"),
        "action-wildcard-matches-nothing": ("error", "Wildcard matches no action"),
        # Resources
        "malformed-arn": ("error", "Malformed ARN"),
        "resource-mismatch": ("error", "Action does not apply to these resources"),
        "action-needs-wildcard-resource": ("warning", 'Action only works with Resource "*"'),
        "resource-wildcard": ("warning", 'Resource "*" where the actions can be scoped'),
        "resource-wildcard-only-action": ("info", 'Actions that only accept Resource "*"'),
        "full-admin": ("error", "Full administrator access"),
        "allow-with-notaction": ("error", "Allow with NotAction"),
        "allow-with-notresource": ("error", "Allow with NotResource"),
        # Sensitive actions
        "privilege-escalation": ("error", "Privilege escalation"),
        "credential-exposure": ("warning", "Actions that return credentials"),
        "permissions-management": ("warning", "Actions that change permissions"),
        "data-read-everywhere": ("warning", "Data read on every resource"),
        # Size
        "policy-too-large": ("error", "Inline policies too large"),
        "policy-size-near-limit": ("warning", "Inline policies close to the size limit"),
    }
)

# Lint findings that make a document unusable, as opposed to risky: these block a
# submission; everything else is shown to the requester and the reviewers.
BLOCKING_LINT_CODES = frozenset(
    {
        "invalid-json",
        "duplicate-key",
        "document-not-object",
        "unknown-document-key",
        "version-invalid",
        "statement-missing",
        "statement-wrong-type",
        "statement-empty",
        "statement-not-object",
        "unknown-statement-key",
        "sid-invalid",
        "duplicate-sid",
        "effect-missing",
        "effect-invalid",
        "action-missing",
        "action-and-notaction",
        "resource-missing",
        "resource-and-notresource",
        "principal-in-identity-policy",
        "wrong-type",
        "condition-malformed",
        "unknown-condition-operator",
        "malformed-action",
        "unknown-service",
        "malformed-arn",
        "policy-too-large",
    }
)

ESCALATION_PATHS: tuple[tuple[tuple[str, ...], str], ...] = (
    # From the published research on AWS privilege escalation (Rhino Security
    # Labs and later work): each entry is a set of actions that together let a
    # principal obtain permissions it was not given.
    (("iam:CreatePolicyVersion",), "rewrite a managed policy it is attached to"),
    (("iam:SetDefaultPolicyVersion",), "switch a managed policy to a looser old version"),
    (("iam:CreateAccessKey",), "create access keys for another IAM user"),
    (("iam:CreateLoginProfile",), "give another IAM user a console password"),
    (("iam:UpdateLoginProfile",), "change another IAM user's console password"),
    (("iam:AttachUserPolicy",), "attach any managed policy to a user"),
    (("iam:AttachGroupPolicy",), "attach any managed policy to a group"),
    (("iam:AttachRolePolicy",), "attach any managed policy to a role"),
    (("iam:PutUserPolicy",), "write any inline policy on a user"),
    (("iam:PutGroupPolicy",), "write any inline policy on a group"),
    (("iam:PutRolePolicy",), "write any inline policy on a role"),
    (("iam:AddUserToGroup",), "join a more privileged group"),
    (("iam:UpdateAssumeRolePolicy",), "let itself assume a more privileged role"),
    (("iam:DeleteUserPermissionsBoundary",), "remove the boundary that caps a user"),
    (("iam:DeleteRolePermissionsBoundary",), "remove the boundary that caps a role"),
    (("iam:PutUserPermissionsBoundary",), "replace a user's boundary with a looser one"),
    (("iam:PutRolePermissionsBoundary",), "replace a role's boundary with a looser one"),
    (("iam:PassRole", "ec2:RunInstances"), "start an instance with a more privileged role"),
    (("iam:PassRole", "ec2:RequestSpotInstances"), "start an instance with a more privileged role"),
    (
        ("iam:PassRole", "lambda:CreateFunction"),
        "create a function that runs as a privileged role",
    ),
    (
        ("iam:PassRole", "lambda:UpdateFunctionConfiguration"),
        "give an existing function a more privileged role",
    ),
    (("lambda:UpdateFunctionCode",), "replace the code of a function that runs with its own role"),
    (
        ("iam:PassRole", "glue:CreateDevEndpoint"),
        "open a dev endpoint with a privileged role",
    ),
    (("glue:UpdateDevEndpoint",), "add its SSH key to a development endpoint and use its role"),
    (("iam:PassRole", "cloudformation:CreateStack"), "create resources as a more privileged role"),
    (("iam:PassRole", "cloudformation:UpdateStack"), "change resources as a more privileged role"),
    (
        ("iam:PassRole", "cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet"),
        "change resources as a more privileged role",
    ),
    (
        ("iam:PassRole", "datapipeline:CreatePipeline", "datapipeline:PutPipelineDefinition"),
        "run commands as a more privileged role",
    ),
    (("iam:PassRole", "ecs:RunTask"), "run a container task as a more privileged role"),
    (("iam:PassRole", "ecs:StartTask"), "run a container task as a more privileged role"),
    (
        ("iam:PassRole", "ecs:RegisterTaskDefinition", "ecs:CreateService"),
        "run a container service as a more privileged role",
    ),
    (
        ("iam:PassRole", "ecs:RegisterTaskDefinition", "ecs:UpdateService"),
        "run a container service as a more privileged role",
    ),
    (
        ("iam:PassRole", "sagemaker:CreateNotebookInstance"),
        "open a notebook as a privileged role",
    ),
    (("iam:PassRole", "sagemaker:CreateTrainingJob"), "run code as a more privileged role"),
    (("iam:PassRole", "sagemaker:CreateProcessingJob"), "run code as a more privileged role"),
    (
        ("iam:PassRole", "codebuild:CreateProject", "codebuild:StartBuild"),
        "run a build as a more privileged role",
    ),
    (
        ("iam:PassRole", "codebuild:CreateProject", "codebuild:StartBuildBatch"),
        "run a build as a more privileged role",
    ),
)

CREDENTIAL_ACTIONS: frozenset[str] = frozenset(
    {
        # The credentials-exposure category policy_sentry ships with its data
        # (no public function exposes it), less the entries that are not IAM
        # actions, plus a few more that hand out secrets or tokens.
        "codeartifact:GetAuthorizationToken",
        "codepipeline:PollForJobs",
        "cognito-identity:GetCredentialsForIdentity",
        "cognito-identity:GetOpenIdToken",
        "cognito-identity:GetOpenIdTokenForDeveloperIdentity",
        "cognito-idp:AssociateSoftwareToken",
        "connect:GetFederationToken",
        "ec2:GetPasswordData",
        "ecr-public:GetAuthorizationToken",
        "ecr:GetAuthorizationToken",
        "gamelift:RequestUploadCredentials",
        "iam:CreateAccessKey",
        "iam:CreateLoginProfile",
        "iam:CreateServiceSpecificCredential",
        "iam:ResetServiceSpecificCredential",
        "iam:UpdateAccessKey",
        "iam:UpdateLoginProfile",
        "lightsail:GetInstanceAccessDetails",
        "lightsail:GetRelationalDatabaseMasterUserPassword",
        "mediapackage:RotateIngestEndpointCredentials",
        "rds-db:connect",
        "redshift-serverless:GetCredentials",
        "redshift:GetClusterCredentials",
        "redshift:GetClusterCredentialsWithIAM",
        "sts:AssumeRole",
        "sts:AssumeRoleWithSAML",
        "sts:AssumeRoleWithWebIdentity",
        "sts:GetFederationToken",
        "sts:GetServiceBearerToken",
        "sts:GetSessionToken",
    }
)

DATA_READ_ACTIONS: frozenset[str] = frozenset(
    {
        # Actions that read stored data or secrets (not configuration): on every
        # resource of their type they are how data leaves an account.
        "dynamodb:BatchGetItem",
        "dynamodb:ExportTableToPointInTime",
        "dynamodb:GetItem",
        "dynamodb:GetRecords",
        "dynamodb:Query",
        "dynamodb:Scan",
        "ebs:GetSnapshotBlock",
        "glacier:GetJobOutput",
        "kinesis:GetRecords",
        "kms:Decrypt",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "secretsmanager:GetSecretValue",
        "sqs:ReceiveMessage",
        "ssm:GetParameter",
        "ssm:GetParameterHistory",
        "ssm:GetParameters",
        "ssm:GetParametersByPath",
    }
)

POLICY_VERSION = "2012-10-17"
OLD_POLICY_VERSION = "2008-10-17"
DOCUMENT_KEYS = ("Version", "Id", "Statement")
STATEMENT_KEYS = (
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)
CONDITION_OPERATORS = frozenset(
    name.lower()
    for name in (
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "StringNotEqualsIgnoreCase",
        "StringLike",
        "StringNotLike",
        "NumericEquals",
        "NumericNotEquals",
        "NumericLessThan",
        "NumericLessThanEquals",
        "NumericGreaterThan",
        "NumericGreaterThanEquals",
        "DateEquals",
        "DateNotEquals",
        "DateLessThan",
        "DateLessThanEquals",
        "DateGreaterThan",
        "DateGreaterThanEquals",
        "Bool",
        "BinaryEquals",
        "IpAddress",
        "NotIpAddress",
        "ArnEquals",
        "ArnLike",
        "ArnNotEquals",
        "ArnNotLike",
        "Null",
    )
)
