from tests.support.pids import reap_pids

__all__ = ["reap_pids"]
