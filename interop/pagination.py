"""How REST lists are paged (REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"])."""

from rest_framework import exceptions
from rest_framework.pagination import CursorPagination


class StableCursorPagination(CursorPagination):
    """Cursor pages (no COUNT over big tables), in id order unless `?ordering=` says otherwise; the
    id is always the last key, so rows sharing a value are never repeated or skipped across pages."""

    ordering = "id"
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isdigit() and 1 <= int(raw) <= self.max_page_size):
            raise exceptions.ValidationError({"page_size": [f"Give a whole number from 1 to {self.max_page_size}."]})
        return super().get_page_size(request)

    def get_ordering(self, request, queryset, view):
        ordering = tuple(super().get_ordering(request, queryset, view))
        if ordering and ordering[-1].lstrip("-") == "id":
            return ordering
        return (*ordering, "-id" if ordering and ordering[0].startswith("-") else "id")
