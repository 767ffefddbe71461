"""The ``stc`` command line."""
