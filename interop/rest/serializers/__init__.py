"""REST input and output shapes, one module per resource. Serializers validate and shape; services write."""
