"""The format registry in templates: ``{% load image_formats %}``, then ``accept="{% image_accept %}"``."""

from django import template

from gallery import formats

register = template.Library()


@register.simple_tag
def image_accept() -> str:
    """A file input's accept list: the content types and file name endings this site reads."""
    return formats.ACCEPT
