from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServiceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVICE_STATE_UNSPECIFIED: _ClassVar[ServiceState]
    SERVICE_STATE_AVAILABLE: _ClassVar[ServiceState]
    SERVICE_STATE_UNAVAILABLE: _ClassVar[ServiceState]
    SERVICE_STATE_DEGRADED: _ClassVar[ServiceState]
SERVICE_STATE_UNSPECIFIED: ServiceState
SERVICE_STATE_AVAILABLE: ServiceState
SERVICE_STATE_UNAVAILABLE: ServiceState
SERVICE_STATE_DEGRADED: ServiceState

class RegisterServiceRequest(_message.Message):
    __slots__ = ("service_type", "version", "endpoint_path", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_PATH_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    service_type: str
    version: str
    endpoint_path: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, service_type: _Optional[str] = ..., version: _Optional[str] = ..., endpoint_path: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RegisterServiceResponse(_message.Message):
    __slots__ = ("registration_id",)
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    def __init__(self, registration_id: _Optional[str] = ...) -> None: ...

class UnregisterServiceRequest(_message.Message):
    __slots__ = ("registration_id",)
    REGISTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    registration_id: str
    def __init__(self, registration_id: _Optional[str] = ...) -> None: ...

class UnregisterServiceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DiscoverServiceRequest(_message.Message):
    __slots__ = ("service_type", "min_version")
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    MIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    service_type: str
    min_version: str
    def __init__(self, service_type: _Optional[str] = ..., min_version: _Optional[str] = ...) -> None: ...

class DiscoverServiceResponse(_message.Message):
    __slots__ = ("endpoint", "single_provider")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    SINGLE_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    endpoint: ServiceEndpoint
    single_provider: bool
    def __init__(self, endpoint: _Optional[_Union[ServiceEndpoint, _Mapping]] = ..., single_provider: _Optional[bool] = ...) -> None: ...

class ServiceEndpoint(_message.Message):
    __slots__ = ("provider_id", "version", "endpoint_url", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    version: str
    endpoint_url: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, provider_id: _Optional[str] = ..., version: _Optional[str] = ..., endpoint_url: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WatchServiceRequest(_message.Message):
    __slots__ = ("service_type",)
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    service_type: str
    def __init__(self, service_type: _Optional[str] = ...) -> None: ...

class WatchServiceEvent(_message.Message):
    __slots__ = ("service_type", "state", "endpoint")
    SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    service_type: str
    state: ServiceState
    endpoint: ServiceEndpoint
    def __init__(self, service_type: _Optional[str] = ..., state: _Optional[_Union[ServiceState, str]] = ..., endpoint: _Optional[_Union[ServiceEndpoint, _Mapping]] = ...) -> None: ...
