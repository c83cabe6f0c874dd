import gallery.fields
from pgvector.django import VectorExtension
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        VectorExtension(),
        migrations.CreateModel(
            name="Image",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("file", models.ImageField(max_length=1024, upload_to="images/%Y/%m/")),
                ("thumbnail", models.ImageField(blank=True, max_length=1024, upload_to="thumbnails/")),
                ("sha256", models.CharField(max_length=64, unique=True, verbose_name="SHA-256")),
                (
                    "path",
                    models.CharField(
                        blank=True,
                        help_text="Original path, relative to the folder it was imported from.",
                        max_length=1024,
                    ),
                ),
                ("width", models.PositiveIntegerField(blank=True, null=True)),
                ("height", models.PositiveIntegerField(blank=True, null=True)),
                ("format", models.CharField(blank=True, max_length=16)),
                ("byte_size", models.PositiveBigIntegerField(blank=True, null=True)),
                (
                    "taken_at",
                    models.DateTimeField(blank=True, help_text="EXIF date taken, else the file's time.", null=True),
                ),
                ("embedding", gallery.fields.EmbeddingField(blank=True, dimensions=512, null=True)),
                ("embedding_model", models.CharField(blank=True, db_index=True, max_length=255)),
                (
                    "state",
                    models.CharField(
                        choices=[("pending", "Pending"), ("embedded", "Embedded"), ("failed", "Failed")],
                        db_index=True,
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("error", models.TextField(blank=True, help_text="Why embedding failed.")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    gallery.fields.EmbeddingHnswIndex(
                        ef_construction=64,
                        fields=["embedding"],
                        m=16,
                        name="gallery_image_embedding_hnsw",
                        opclasses=["vector_cosine_ops"],
                    ),
                    models.Index(fields=["path"], name="gallery_image_path_prefix", opclasses=["varchar_pattern_ops"]),
                    models.Index(fields=["taken_at"], name="gallery_image_taken_at"),
                ],
            },
        ),
    ]
