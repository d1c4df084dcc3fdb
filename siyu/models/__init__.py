"""All tables, one module per aggregate. Importing this package registers every model."""

from siyu.models.add_task import AddTask, AddTaskList, AddTaskStatus
from siyu.models.audit import AuditEntry
from siyu.models.base import Base, WorkspaceScoped
from siyu.models.channel import Channel, ChannelCostEntry, ChannelType, CostModel
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
from siyu.models.experiment import (
    Experiment,
    ExperimentExposure,
    ExperimentMetric,
    ExperimentStatus,
    ExperimentVariant,
)
from siyu.models.group import CommunityGroup
from siyu.models.job import Job, JobStatus, ScheduledRun
from siyu.models.live_code import (
    LiveCode,
    LiveCodeKind,
    LiveCodeRoute,
    LiveCodeRouteDay,
    LiveCodeScan,
    LiveCodeTag,
    RotationMode,
    RouteShift,
)
from siyu.models.order import Order, OrderItem, OrderStatus
from siyu.models.org import Region, Staff, Store
from siyu.models.relationship import Relationship, RemovedBy
from siyu.models.segment import (
    MembershipChange,
    Segment,
    SegmentKind,
    SegmentMember,
    SegmentMembershipEvent,
    SegmentSizePoint,
    SegmentVersion,
)
from siyu.models.short_link import ShortLink, ShortLinkClick
from siyu.models.tag import CustomerTag, Tag, TagGroup, TagSource
from siyu.models.user import ApiToken, Membership, Role, User
from siyu.models.workspace import Workspace

__all__ = [
    "AddTask",
    "AddTaskList",
    "AddTaskStatus",
    "ApiToken",
    "AttributeDefinition",
    "AttributeType",
    "AuditEntry",
    "Base",
    "Channel",
    "ChannelCostEntry",
    "ChannelType",
    "CommunityGroup",
    "Consent",
    "ConsentChannel",
    "ConsentStatus",
    "CostModel",
    "Customer",
    "CustomerEvent",
    "CustomerMerge",
    "CustomerTag",
    "Experiment",
    "ExperimentExposure",
    "ExperimentMetric",
    "ExperimentStatus",
    "ExperimentVariant",
    "Gender",
    "Identity",
    "IdentityType",
    "IdentityTypeDefinition",
    "Job",
    "JobStatus",
    "LifecycleStage",
    "LiveCode",
    "LiveCodeKind",
    "LiveCodeRoute",
    "LiveCodeRouteDay",
    "LiveCodeScan",
    "LiveCodeTag",
    "Membership",
    "MembershipChange",
    "Order",
    "OrderItem",
    "OrderStatus",
    "Region",
    "Relationship",
    "RemovedBy",
    "Role",
    "RotationMode",
    "RouteShift",
    "ScheduledRun",
    "Segment",
    "SegmentKind",
    "SegmentMember",
    "SegmentMembershipEvent",
    "SegmentSizePoint",
    "SegmentVersion",
    "ShortLink",
    "ShortLinkClick",
    "Staff",
    "Store",
    "Tag",
    "TagGroup",
    "TagSource",
    "User",
    "Workspace",
    "WorkspaceScoped",
]
