from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HealthState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_STATE_UNSPECIFIED: _ClassVar[HealthState]
    HEALTH_STATE_HEALTHY: _ClassVar[HealthState]
    HEALTH_STATE_DEGRADED: _ClassVar[HealthState]
    HEALTH_STATE_UNHEALTHY: _ClassVar[HealthState]
HEALTH_STATE_UNSPECIFIED: HealthState
HEALTH_STATE_HEALTHY: HealthState
HEALTH_STATE_DEGRADED: HealthState
HEALTH_STATE_UNHEALTHY: HealthState

class ReportHealthRequest(_message.Message):
    __slots__ = ("state", "reason", "unavailable_dependencies")
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    state: HealthState
    reason: str
    unavailable_dependencies: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, state: _Optional[_Union[HealthState, str]] = ..., reason: _Optional[str] = ..., unavailable_dependencies: _Optional[_Iterable[str]] = ...) -> None: ...

class ReportHealthResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHealthResponse(_message.Message):
    __slots__ = ("state", "reason", "unavailable_dependencies")
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    state: HealthState
    reason: str
    unavailable_dependencies: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, state: _Optional[_Union[HealthState, str]] = ..., reason: _Optional[str] = ..., unavailable_dependencies: _Optional[_Iterable[str]] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("grace_period_seconds", "reason")
    GRACE_PERIOD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    grace_period_seconds: int
    reason: str
    def __init__(self, grace_period_seconds: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ShutdownResponse(_message.Message):
    __slots__ = ("acknowledged",)
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    acknowledged: bool
    def __init__(self, acknowledged: _Optional[bool] = ...) -> None: ...
