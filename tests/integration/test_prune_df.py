"""system df, container prune and image prune as the docker CLI shows them (through berthd)."""

from __future__ import annotations


def test_system_df_counts_shared_layers_once(berth):
    berth.docker("tag", "busybox", "bt/df-a:1", check=True)
    berth.docker("tag", "busybox", "bt/df-b:1", check=True)
    try:
        r = berth.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Size}}", check=True)
        rows = dict(line.split(" ", 1) for line in r.stdout.splitlines())
        images = berth.docker("images", "-a", "-q", "--no-trunc", check=True).stdout.split()
        assert rows["Images"].split()[0] == str(len(set(images)))
        busybox_size = berth.docker("image", "inspect", "-f", "{{.Size}}", "busybox", check=True).stdout.strip()
        assert int(busybox_size) > 1_000_000
        # three tags of one image: one row, its one layer counted once
        r = berth.docker("system", "df", "-v", check=True)
        section = r.stdout.split("Images space usage:")[1].split("Containers space usage:")[0]
        rows = [line for line in section.splitlines() if line.strip() and not line.startswith("REPOSITORY")]
        assert len(rows) == len(set(images))
    finally:
        berth.docker("rmi", "bt/df-a:1", "bt/df-b:1")


def test_container_prune_removes_only_stopped(berth):
    stopped = berth("run", "--name", "pr-stopped", "busybox", "sh", "-c",
                    "dd if=/dev/zero of=/f bs=1k count=200 2>/dev/null", check=True)
    assert stopped.returncode == 0
    running = berth("run", "-d", "--name", "pr-running", "busybox", "sleep", "60", check=True).stdout.strip()
    r = berth.docker("container", "prune", "-f", check=True)
    assert "Deleted Containers:" in r.stdout
    assert "Total reclaimed space: 204.8kB" in r.stdout
    names = berth("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()
    assert "pr-stopped" not in names and "pr-running" in names
    assert berth.inspect(running)["State"]["Running"] is True


def test_image_prune_dangling_and_all(berth, busybox_tar):
    cid = berth("create", "busybox", "true", check=True).stdout.strip()
    first = berth.docker("commit", cid, "bt/prune:1", check=True).stdout.strip()
    berth.docker("commit", cid, "bt/prune:1", check=True)  # retag: the first becomes dangling
    r = berth.docker("image", "prune", "-f", check=True)
    assert f"deleted: {first}" in r.stdout
    assert "bt/prune" in berth.docker("images", check=True).stdout
    r = berth.docker("image", "prune", "-a", "-f", check=True)
    assert "untagged: bt/prune:1" in r.stdout
    out = berth.docker("images", check=True).stdout
    assert "bt/prune" not in out and "busybox" in out  # busybox is used by a container: kept
