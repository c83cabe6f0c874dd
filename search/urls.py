from django.urls import path

from . import views

app_name = "search"

urlpatterns = [
    path("", views.index, name="index"),
    path("images/<int:pk>/", views.image_detail, name="image"),
]
