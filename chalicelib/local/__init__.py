"""Running Baton on one machine against moto: resource creation, the local stack, its pumps."""
