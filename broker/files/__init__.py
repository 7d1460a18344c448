"""Files in a kernel's working directory, moved through the kernel protocol.

``protocol`` is what every kernel-side helper implements; the helpers run inside the
kernel, one per language (``kernel_python.py``, ``kernel_r.R``, ``kernel_deno.ts``,
``kernel_bash.sh``), each sent by its adapter (``python_helper``, ``r_helper``,
``deno_helper``, ``bash_helper``); ``languages`` picks one by the kernel's kernel_info;
``transfer`` makes the calls; ``paths`` checks request paths; ``multipart`` streams form
uploads; ``limits`` holds the operator's settings.
"""
