"""Inline markers through which a provider's factory receives the objects of the App building it.

A provider passes a marker as an argument of its factory, for example
``providers.Singleton(make, lifecycle=AppLifecycle())``. The App that manages the
provider binds every marker it finds in its graph, named or inline, to its own object;
built by no App, the factory receives None. Nothing is read from ambient state, so a
provider built outside an App still works, and two Apps never see each other's objects.
"""

from __future__ import annotations

from typing import ClassVar

from dependency_injector import providers

from plugin_di.di.lifecycle import Lifecycle
from plugin_di.settings import Settings


class AppObject(providers.Object[object]):
    """Base of the markers: yields None until an App binds it to its object of type `kind`."""

    kind: ClassVar[type] = object


class AppLifecycle(AppObject):
    """The app's `Lifecycle` (None outside an App)."""

    kind = Lifecycle


class AppSettings(AppObject):
    """The app's `Settings` (None outside an App)."""

    kind = Settings
