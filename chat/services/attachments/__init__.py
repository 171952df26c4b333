"""Files attached to messages (issue 13): what is accepted (``sniffing``, ``images``), how an
upload is stored and limited (``store``, ``limits``), how files join the turn they were sent
with (``linking``), and how they go upstream (``upstream``).

Files live in Django's default storage (local disk under the data directory, or S3-compatible
storage): never served directly, always through ``chat.views.attachments``, which applies the
thread's access rules."""
