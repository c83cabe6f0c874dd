import pytest

from tests.factories import aware, make_images


@pytest.fixture
def collection(db):
    """55 images: 30 JPEG in holidays/2023, 15 PNG in holidays/2024, 10 WEBP in work; each a day after the last."""
    return (
        make_images(30, start=0, folder="holidays/2023", taken=aware(2023, 7, 1, 12))
        + make_images(15, start=30, folder="holidays/2024", fmt="PNG", taken=aware(2024, 6, 1, 12))
        + make_images(10, start=45, folder="work", fmt="WEBP", taken=aware(2022, 3, 1, 12))
    )
