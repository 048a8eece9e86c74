from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HandshakeRequest(_message.Message):
    __slots__ = ("core_protocol_version", "app_protocol_version", "magic_cookie_key", "magic_cookie_value", "requested_plugins", "client_metadata", "self_id", "self_version", "app_protocol_versions")
    class ClientMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CORE_PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    APP_PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAGIC_COOKIE_KEY_FIELD_NUMBER: _ClassVar[int]
    MAGIC_COOKIE_VALUE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_PLUGINS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_METADATA_FIELD_NUMBER: _ClassVar[int]
    SELF_ID_FIELD_NUMBER: _ClassVar[int]
    SELF_VERSION_FIELD_NUMBER: _ClassVar[int]
    APP_PROTOCOL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    core_protocol_version: int
    app_protocol_version: int
    magic_cookie_key: str
    magic_cookie_value: str
    requested_plugins: _containers.RepeatedScalarFieldContainer[str]
    client_metadata: _containers.ScalarMap[str, str]
    self_id: str
    self_version: str
    app_protocol_versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, core_protocol_version: _Optional[int] = ..., app_protocol_version: _Optional[int] = ..., magic_cookie_key: _Optional[str] = ..., magic_cookie_value: _Optional[str] = ..., requested_plugins: _Optional[_Iterable[str]] = ..., client_metadata: _Optional[_Mapping[str, str]] = ..., self_id: _Optional[str] = ..., self_version: _Optional[str] = ..., app_protocol_versions: _Optional[_Iterable[int]] = ...) -> None: ...

class HandshakeResponse(_message.Message):
    __slots__ = ("core_protocol_version", "app_protocol_version", "plugins", "server_metadata", "host_capabilities", "runtime_id", "runtime_token")
    class ServerMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CORE_PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    APP_PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    SERVER_METADATA_FIELD_NUMBER: _ClassVar[int]
    HOST_CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ID_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    core_protocol_version: int
    app_protocol_version: int
    plugins: _containers.RepeatedCompositeFieldContainer[PluginInfo]
    server_metadata: _containers.ScalarMap[str, str]
    host_capabilities: _containers.RepeatedCompositeFieldContainer[Capability]
    runtime_id: str
    runtime_token: str
    def __init__(self, core_protocol_version: _Optional[int] = ..., app_protocol_version: _Optional[int] = ..., plugins: _Optional[_Iterable[_Union[PluginInfo, _Mapping]]] = ..., server_metadata: _Optional[_Mapping[str, str]] = ..., host_capabilities: _Optional[_Iterable[_Union[Capability, _Mapping]]] = ..., runtime_id: _Optional[str] = ..., runtime_token: _Optional[str] = ...) -> None: ...

class PluginInfo(_message.Message):
    __slots__ = ("name", "version", "service_path", "provides", "requires")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_PATH_FIELD_NUMBER: _ClassVar[int]
    PROVIDES_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    service_path: str
    provides: _containers.RepeatedCompositeFieldContainer[ServiceDeclaration]
    requires: _containers.RepeatedCompositeFieldContainer[ServiceDependency]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., service_path: _Optional[str] = ..., provides: _Optional[_Iterable[_Union[ServiceDeclaration, _Mapping]]] = ..., requires: _Optional[_Iterable[_Union[ServiceDependency, _Mapping]]] = ...) -> None: ...

class Capability(_message.Message):
    __slots__ = ("type", "version", "endpoint")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    type: str
    version: str
    endpoint: str
    def __init__(self, type: _Optional[str] = ..., version: _Optional[str] = ..., endpoint: _Optional[str] = ...) -> None: ...

class ServiceDeclaration(_message.Message):
    __slots__ = ("type", "version", "path")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    type: str
    version: str
    path: str
    def __init__(self, type: _Optional[str] = ..., version: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ServiceDependency(_message.Message):
    __slots__ = ("type", "min_version", "required_for_startup", "watch_for_changes")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FOR_STARTUP_FIELD_NUMBER: _ClassVar[int]
    WATCH_FOR_CHANGES_FIELD_NUMBER: _ClassVar[int]
    type: str
    min_version: str
    required_for_startup: bool
    watch_for_changes: bool
    def __init__(self, type: _Optional[str] = ..., min_version: _Optional[str] = ..., required_for_startup: _Optional[bool] = ..., watch_for_changes: _Optional[bool] = ...) -> None: ...
