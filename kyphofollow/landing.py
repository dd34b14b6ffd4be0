"""The site's front page: where staff sign in, the API documentation and the health check."""

from django.shortcuts import render
from django.views.decorators.http import require_safe


@require_safe
def landing(request):
    return render(request, "landing.html")
