"""Staff search of the admin's lists without the words in a URL: a search by name or MRN is sent by
POST, kept in the session, and the list's URL carries only an opaque key to it (`?s=…`), so no
patient identifier reaches a URL, a browser's history, a proxy's log or a Referer (ASVS 8.3.1).
Sorting, filters, pages and the way back from a row keep the key, never the words.
"""

import secrets

from django.contrib.admin.views.main import SEARCH_VAR, ChangeList
from django.http import HttpResponseRedirect

SEARCH_KEY = "s"  # the opaque key in the URL
SESSION_KEY = "kf_admin_searches"  # key → words, in the session
KEPT = 20  # the newest searches kept per session
DROPPED = {SEARCH_VAR, SEARCH_KEY, "_search", "csrfmiddlewaretoken"}


def kept_search(request) -> str:
    """The words the URL's key stands for in this session ("" for none or an unknown key)."""
    return request.session.get(SESSION_KEY, {}).get(request.GET.get(SEARCH_KEY, ""), "")


class SessionSearchChangeList(ChangeList):
    """The list searched by the words kept in the session; the key is not a filter."""

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(SEARCH_KEY, None)
        return lookup_params

    def get_queryset(self, request, exclude_parameters=None):
        self.query = kept_search(request)
        return super().get_queryset(request, exclude_parameters)


class SessionSearchAdmin:
    """A ModelAdmin whose list search is kept in the session (admin/search_form.html posts it)."""

    search_in_session = True

    def get_changelist(self, request, **kwargs):
        return SessionSearchChangeList

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST" and "_search" in request.POST:
            return _searched(request, request.POST.get(SEARCH_VAR, ""), request.POST)
        if SEARCH_VAR in request.GET:  # an old bookmark or a typed ?q=: moved out of the URL at once
            return _searched(request, request.GET[SEARCH_VAR], request.GET)
        return super().changelist_view(request, extra_context)


def _searched(request, words: str, params) -> HttpResponseRedirect:
    """Back to the list with the other parameters and, for a search, the key to its words."""
    query = params.copy()
    for name in DROPPED:
        query.pop(name, None)
    words = words.strip()[:100]
    if words:
        searches = dict(list(request.session.get(SESSION_KEY, {}).items())[-(KEPT - 1) :])
        key = secrets.token_urlsafe(9)
        searches[key] = words
        request.session[SESSION_KEY] = searches
        query[SEARCH_KEY] = key
    return HttpResponseRedirect(f"{request.path}?{query.urlencode()}" if query else request.path)
