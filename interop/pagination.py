"""How REST lists are paged (REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"])."""

from rest_framework import exceptions
from rest_framework.pagination import CursorPagination

# Never an ordering of a cursor-paged list: the cursor (a URL that ends up in logs and histories) would
# carry the boundary row's value, i.e. a name, an MRN or a birth date.
CURSOR_REFUSED = frozenset({"family_name", "given_name", "mrn", "birth_date"})


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
        asked = {field.strip().lstrip("-") for field in request.query_params.get("ordering", "").split(",")}
        if asked & CURSOR_REFUSED:
            raise exceptions.ValidationError(
                {
                    "ordering": [
                        "A page cursor carries the value of the first ordering field, and these fields hold patient "
                        f"data: {', '.join(sorted(asked & CURSOR_REFUSED))}. Order by id or updated_at instead."
                    ]
                }
            )
        ordering = tuple(super().get_ordering(request, queryset, view))
        if ordering and ordering[-1].lstrip("-") == "id":
            return ordering
        return (*ordering, "-id" if ordering and ordering[0].startswith("-") else "id")
