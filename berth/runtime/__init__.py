"""Berth's low-level OCI runtime: runs OCI bundles with namespaces, cgroups, mounts, capabilities.

Public entry points (see ``process``): ``start_container``, ``exec_process``, ``signal_process``,
``delete_container``; ``spec.generate_spec`` builds the bundle's config.json from Docker shapes;
``cgroups.open_cgroup`` gives pause/resume, OOM and stats. All raw syscalls live in ``syscalls``.
"""
