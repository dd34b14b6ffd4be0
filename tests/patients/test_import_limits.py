"""Import files that are too big fail cleanly: a CSV cell over 128 KiB is an error naming its row (not a
500), and an upload over 10 MB is stopped while it is being read, not after the whole body arrived."""

import io

from django.urls import reverse

from patients.admin_import import MAX_UPLOAD_BYTES, SizeLimitedUpload
from patients.models import ImportPreview, Patient
from tests.patients.test_import import SAMPLE


def post_file(client, clinic, content: bytes, name="patients.csv"):
    file = io.BytesIO(content)
    file.name = name
    return client.post(reverse("patients-import"), {"clinic": clinic.pk, "file": file})


def test_a_csv_cell_of_200_kib_is_a_row_error_naming_the_row(client, coordinator, clinic):
    lines = SAMPLE.read_bytes().splitlines()
    lines.insert(3, b"A999,Long," + b"x" * (200 * 1024) + b",1950-01-01")
    client.force_login(coordinator)

    response = post_file(client, clinic, b"\n".join(lines) + b"\n")

    assert response.status_code == 200
    [error] = response.context["result"].errors
    assert error.row == 4 and "Row 4" in error.message and "128 KiB" in error.message
    assert not Patient.objects.exists() and not ImportPreview.objects.exists()


def test_an_upload_over_the_limit_is_stopped_while_it_is_read(client, coordinator, clinic, monkeypatch):
    seen: list[int] = []
    original = SizeLimitedUpload.receive_data_chunk

    def counting(self, raw_data, start):
        seen.append(start + len(raw_data))
        return original(self, raw_data, start)

    monkeypatch.setattr(SizeLimitedUpload, "receive_data_chunk", counting)
    client.force_login(coordinator)

    response = post_file(client, clinic, SAMPLE.read_bytes() + b"#" * (3 * MAX_UPLOAD_BYTES))

    assert response.status_code == 200
    assert "larger than 10 MB" in str(response.context["form"].errors["file"])
    assert max(seen) <= MAX_UPLOAD_BYTES + 2 * 1024 * 1024, "reading stopped soon after the limit"
    assert not Patient.objects.exists() and not ImportPreview.objects.exists()


def test_an_upload_at_the_limit_is_read_whole(client, coordinator, clinic):
    content = SAMPLE.read_bytes()
    client.force_login(coordinator)

    response = post_file(client, clinic, content)

    assert response.status_code == 200 and response.context["result"].ok
    assert bytes(ImportPreview.objects.get().content) == content
