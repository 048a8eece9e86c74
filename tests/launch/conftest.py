from launch_support import reap_pids

__all__ = ["reap_pids"]
