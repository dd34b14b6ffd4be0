"""REST API for EHR systems (/api/v1/). Reads use generic views narrowed to the caller's clinics; each
write is input serializer → one service → output serializer."""
