"""All tables, one module per aggregate. Importing this package registers every model."""

from siyu.models.audit import AuditEntry
from siyu.models.base import Base, WorkspaceScoped
from siyu.models.consent import Consent, ConsentChannel, ConsentStatus
from siyu.models.customer import (
    AttributeDefinition,
    AttributeType,
    Customer,
    CustomerMerge,
    Gender,
    Identity,
    IdentityType,
    IdentityTypeDefinition,
    LifecycleStage,
)
from siyu.models.event import CustomerEvent
from siyu.models.job import Job, JobStatus
from siyu.models.org import Region, Staff, Store
from siyu.models.relationship import Relationship, RemovedBy
from siyu.models.tag import CustomerTag, Tag, TagGroup, TagSource
from siyu.models.user import ApiToken, Membership, Role, User
from siyu.models.workspace import Workspace

__all__ = [
    "ApiToken",
    "AttributeDefinition",
    "AttributeType",
    "AuditEntry",
    "Base",
    "Consent",
    "ConsentChannel",
    "ConsentStatus",
    "Customer",
    "CustomerEvent",
    "CustomerMerge",
    "CustomerTag",
    "Gender",
    "Identity",
    "IdentityType",
    "IdentityTypeDefinition",
    "Job",
    "JobStatus",
    "LifecycleStage",
    "Membership",
    "Region",
    "Relationship",
    "RemovedBy",
    "Role",
    "Staff",
    "Store",
    "Tag",
    "TagGroup",
    "TagSource",
    "User",
    "Workspace",
    "WorkspaceScoped",
]
