from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RequestCapabilityRequest(_message.Message):
    __slots__ = ("capability_type", "min_version", "reason")
    CAPABILITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    MIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    capability_type: str
    min_version: str
    reason: str
    def __init__(self, capability_type: _Optional[str] = ..., min_version: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RequestCapabilityResponse(_message.Message):
    __slots__ = ("grant",)
    GRANT_FIELD_NUMBER: _ClassVar[int]
    grant: CapabilityGrant
    def __init__(self, grant: _Optional[_Union[CapabilityGrant, _Mapping]] = ...) -> None: ...

class CapabilityGrant(_message.Message):
    __slots__ = ("grant_id", "endpoint_url", "bearer_token", "capability_type", "version")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    BEARER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    endpoint_url: str
    bearer_token: str
    capability_type: str
    version: str
    def __init__(self, grant_id: _Optional[str] = ..., endpoint_url: _Optional[str] = ..., bearer_token: _Optional[str] = ..., capability_type: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...
