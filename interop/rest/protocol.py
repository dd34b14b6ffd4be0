"""The protocol in force over REST (/api/v1/protocol/)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from patients.protocol import get_protocol

from ..auth import caller_clinics
from ..openapi import ERRORS


class ProtocolView(APIView):
    """The protocol version in force for the caller's clinic, with every rule's id and source."""

    @extend_schema(
        summary="Protocol in force, with sources",
        description="The follow-up protocol version in force for a clinic, as data: every checkpoint, red-flag "
        "and risk rule with its id and the source it comes from.",
        parameters=[OpenApiParameter("clinic", str, description="Clinic slug (default: the caller's only clinic)")],
        responses={200: dict, **ERRORS},
    )
    def get(self, request):
        clinics = caller_clinics(request)
        slug = request.query_params.get("clinic")
        clinic = clinics.filter(slug=slug).first() if slug else clinics.first()
        if clinic is None:
            return Response({"detail": "No such clinic for this caller."}, status=404)
        protocol = get_protocol(clinic.protocol_version)
        return Response(
            {"clinic": clinic.slug, "version": protocol.version, "title": protocol.title, "protocol": protocol.raw}
        )
