"""Sign-in for an organisation: OpenID Connect (``oidc``), LDAP (``ldap``) and a trusted
reverse-proxy header (``header``). All three end in ``identity.sign_in``, which matches the
person by the provider's stable id, refuses collisions with local accounts and keeps teams in
step with the person's groups (``groups``)."""
