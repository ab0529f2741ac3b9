"""api.archives on its own: what reading an archive holds in memory."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

from api.archives import ArchiveLimits, read_members


def test_a_zip_of_many_entries_is_read_one_entry_at_a_time():
    """zipfile's reader holds an object per entry (about 0.6 kB each); ours holds one, so the
    memory to read an archive does not grow with its entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(20_000):
            archive.writestr(f"{i:06d}.png", b"x" * 50)
    limits = ArchiveLimits(max_items=20_000, max_member_bytes=1000, max_total_bytes=10**9)
    upload = io.BytesIO(buffer.getvalue())  # the spooled upload: not what reading costs
    tracemalloc.start()
    try:
        count = sum(1 for _, data, error in read_members(upload, "zip", limits)
                    if data and not error)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < 1_000_000, peak  # zipfile.ZipFile alone: ~11 MB for these entries
