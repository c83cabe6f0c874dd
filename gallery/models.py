from django.conf import settings
from django.db import models
from pgvector.django import VectorField

from .fields import EmbeddingField, EmbeddingHnswIndex
from .querysets import ImageQuerySet


class Image(models.Model):
    """One image of the collection, identified by the sha256 of its content."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        EMBEDDED = "embedded", "Embedded"
        FAILED = "failed", "Failed"

    # The file and where it came from
    file = models.ImageField(upload_to="images/%Y/%m/", max_length=1024)
    thumbnail = models.ImageField(upload_to="thumbnails/", max_length=1024, blank=True)
    sha256 = models.CharField("SHA-256", max_length=64, unique=True)
    path = models.CharField(
        max_length=1024, blank=True, help_text="Original path, relative to the folder it was imported from."
    )

    # What it is
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    format = models.CharField(max_length=16, blank=True)
    byte_size = models.PositiveBigIntegerField(null=True, blank=True)
    taken_at = models.DateTimeField(null=True, blank=True, help_text="EXIF date taken, else the file's time.")

    # The embedding
    embedding = EmbeddingField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True, blank=True)
    # A database default on both encoder columns: a switch swaps their names (gallery/switch.py), and
    # a raw INSERT (bulkload) that names only one must find a default on the other, whichever it is.
    encoder = models.CharField(max_length=255, blank=True, db_index=True, db_default="")
    # The next encoder's vectors, filled beside these while search uses the above, then swapped in
    # (``manage.py switch_encoder``, gallery/switch.py). Empty unless a switch is under way.
    embedding_next = EmbeddingField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True, blank=True, editable=False)
    encoder_next = models.CharField(max_length=255, blank=True, db_index=True, editable=False, db_default="")
    state = models.CharField(max_length=16, choices=State, default=State.PENDING, db_index=True)
    error = models.TextField(blank=True, help_text="Why embedding failed.")
    # Background embedding (gallery/background.py): set before a worker starts on the image and taken
    # back when the worker lives to finish, so it counts the workers that died on it.
    attempts = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,  # raw INSERTs (gallery/bulkload.py) need not name it
        help_text="Background embeddings of this image whose worker died before finishing.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Operator class vector_cosine_ops or halfvec_cosine_ops, following VECTOR_STORAGE.
            EmbeddingHnswIndex(
                name="gallery_image_embedding_hnsw",
                fields=["embedding"],
                m=16,
                # 128, not 64: far better recall at the same size and query time, for a longer build
                # (bench/README.md, "Scale").
                ef_construction=128,
                opclasses=["vector_cosine_ops"],
            ),
            # Folder filters are path prefixes: LIKE 'a/b/%' needs the pattern opclass.
            models.Index(fields=["path"], name="gallery_image_path_prefix", opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["taken_at"], name="gallery_image_taken_at"),
            # The embedding rate of the last minute (gallery/background.py progress) without reading every row.
            models.Index(fields=["updated_at"], name="gallery_image_updated_at"),
        ]

    def __str__(self):
        return self.path or self.file.name

    @property
    def preview_url(self) -> str:
        """Where to show the image small: its thumbnail, else the file itself."""
        return (self.thumbnail or self.file).url


class EncoderPairs(models.Model):
    """Which encoder pair made the vectors in ``Image.embedding``, and which fills ``embedding_next``.

    One row (id 1), written by ``manage.py switch_encoder`` only; without it the settings
    CLIP_IMAGE_MODEL / CLIP_TEXT_MODEL name the pair, as before. ``generation`` grows at every change,
    so a search or a write can tell, under the table's lock, that the columns moved under it.
    """

    image_model = models.CharField(max_length=1024)
    text_model = models.CharField(max_length=1024)
    next_image_model = models.CharField(max_length=1024, blank=True)
    next_text_model = models.CharField(max_length=1024, blank=True)
    generation = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "encoder pairs"

    def __str__(self):
        return f"{self.image_model} + {self.text_model}"


class Concept(models.Model):
    """A word for pictures (gallery/labels.py): its names in one or more languages and their text vector.

    ``vector`` is the mean of the unit vectors of all its names, made by the active text encoder;
    ``vector_key`` says which names and which encoder made it, so a change of either is seen and the
    concept embedded again (``manage.py label_images``).
    """

    key = models.SlugField(
        max_length=100,
        unique=True,
        allow_unicode=True,
        help_text="Short identifier, as used by filters (label:KEY); lowercase, no spaces.",
    )
    names = models.JSONField(
        default=dict,
        help_text='Names by language code, e.g. {"en": ["dog", "puppy"], "de": ["Hund"]}. All of them are embedded.',
    )
    source = models.CharField(
        max_length=32, default="admin", help_text="Where it came from: default, world (load_vocabulary), admin."
    )
    vector = VectorField(dimensions=settings.EMBEDDING_DIMENSIONS, null=True, blank=True, editable=False)
    vector_key = models.CharField(max_length=64, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self):
        return self.key

    @property
    def name(self) -> str:
        """The first English name, else the first name of any language, else the key."""
        for names in [self.names.get("en") or [], *self.names.values()]:
            if names:
                return names[0]
        return self.key


class ImageLabel(models.Model):
    """One label of an image and its probability (a softmax over the whole vocabulary, gallery/labels.py)."""

    pk = models.CompositePrimaryKey("image", "concept")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="labels", db_index=False)
    concept = models.ForeignKey(Concept, on_delete=models.CASCADE, related_name="image_labels", db_index=False)
    probability = models.FloatField()

    class Meta:
        # The primary key's index leads with image (an image's labels); this one answers label filters.
        indexes = [models.Index(fields=["concept", "-probability"], name="gallery_imagelabel_concept")]

    def __str__(self):
        return f"{self.image_id}: {self.concept_id} {self.probability:.3f}"


class LabelledImage(models.Model):
    """Which vocabulary version (its concepts' vectors, both encoders, gallery/labels.py) an image's labels come from."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, primary_key=True, related_name="labelled")
    version = models.CharField(max_length=64)

    def __str__(self):
        return f"{self.image_id}: {self.version}"
