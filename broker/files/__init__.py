"""Files in a kernel's working directory, moved through the kernel protocol.

``kernel_python`` runs inside the kernel; ``languages`` picks it by the kernel's
language; ``transfer`` makes the calls; ``paths`` checks request paths; ``multipart``
streams form uploads; ``limits`` holds the operator's settings.
"""
