from plugin_di.gen.connectplugin.v1 import handshake_pb2 as _handshake_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetPluginInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPluginInfoResponse(_message.Message):
    __slots__ = ("self_id", "self_version", "provides", "requires", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SELF_ID_FIELD_NUMBER: _ClassVar[int]
    SELF_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROVIDES_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    self_id: str
    self_version: str
    provides: _containers.RepeatedCompositeFieldContainer[_handshake_pb2.ServiceDeclaration]
    requires: _containers.RepeatedCompositeFieldContainer[_handshake_pb2.ServiceDependency]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, self_id: _Optional[str] = ..., self_version: _Optional[str] = ..., provides: _Optional[_Iterable[_Union[_handshake_pb2.ServiceDeclaration, _Mapping]]] = ..., requires: _Optional[_Iterable[_Union[_handshake_pb2.ServiceDependency, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SetRuntimeIdentityRequest(_message.Message):
    __slots__ = ("runtime_id", "runtime_token", "host_url")
    RUNTIME_ID_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HOST_URL_FIELD_NUMBER: _ClassVar[int]
    runtime_id: str
    runtime_token: str
    host_url: str
    def __init__(self, runtime_id: _Optional[str] = ..., runtime_token: _Optional[str] = ..., host_url: _Optional[str] = ...) -> None: ...

class SetRuntimeIdentityResponse(_message.Message):
    __slots__ = ("acknowledged",)
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    acknowledged: bool
    def __init__(self, acknowledged: _Optional[bool] = ...) -> None: ...
