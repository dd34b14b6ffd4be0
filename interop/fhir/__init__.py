"""FHIR R4 facade (/fhir/, docs/fhir.md): one module per resource, over the same services as the REST API."""
