"""The Kubernetes provisioner's configuration: every setting of its kernel pods as a traitlet.

Set as ``KubernetesProvisioner.<name>`` in a traitlets config file, or per kernelspec in
``metadata.kernel_provisioner.config``. docs/kubernetes.md lists them with their defaults.
"""

from __future__ import annotations

from traitlets import Bool, Dict, Float, HasTraits, Int, List, Unicode

from .podsettings import HOME_DIR, KERNEL_GID, KERNEL_UID, Bounds, PodSettings


class PodTraits(HasTraits):
    """The provisioner's settings, and the :class:`PodSettings` they make."""

    namespace = Unicode("default", config=True, help="Namespace the kernel pods run in.")
    image = Unicode(
        "kernel-broker/kernel-python:0.1.0", config=True, help="Kernel container image."
    )
    image_pull_policy = Unicode("IfNotPresent", config=True, help="imagePullPolicy of kernels.")
    command = List(
        Unicode(),
        default_value=["python", "/opt/kernel/entrypoint.py"],
        config=True,
        help="Container command; the kernel image's entrypoint.",
    )
    in_cluster = Bool(
        False, config=True, help="Use the pod's service account instead of a kubeconfig."
    )
    kubeconfig = Unicode(
        "", config=True, help="kubeconfig path (default: $KUBECONFIG, ~/.kube/config)."
    )
    context = Unicode("", config=True, help="kubeconfig context (default: current).")
    token_file = Unicode(
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        config=True,
        help="In-cluster service account token file.",
    )
    ca_file = Unicode(
        "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
        config=True,
        help="In-cluster CA bundle.",
    )
    broker_name = Unicode(
        "kernel-broker", config=True, help="This broker's name, put in every pod's labels."
    )
    launch_timeout = Float(
        60.0,
        config=True,
        help="Seconds to wait for a kernel pod to be ready; KERNEL_LAUNCH_TIMEOUT may lower it.",
    )
    resources = Dict(
        config=True, help='Kernel container resources: {"requests": {...}, "limits": {...}}.'
    )
    max_cpus = Unicode("4", config=True, help="Highest KERNEL_CPUS a request may ask for.")
    max_memory = Unicode("8Gi", config=True, help="Highest KERNEL_MEMORY a request may ask for.")
    max_gpus = Int(0, config=True, help="Highest KERNEL_GPUS a request may ask for.")
    node_selector = Dict(config=True, help="nodeSelector for kernel pods.")
    tolerations = List(Dict(), config=True, help="Tolerations for kernel pods.")
    volumes = Dict(
        config=True,
        help='Volumes a request may name in KERNEL_VOLUMES: {name: {"volume": {<source>}, '
        '"mountPath": "/path", "readOnly": false}}.',
    )
    default_volumes = List(Unicode(), config=True, help="Volume names every kernel mounts.")
    working_dirs = List(
        Unicode(),
        default_value=[HOME_DIR, "/uploaded_files"],
        config=True,
        help="Allowed KERNEL_WORKING_DIR roots; the first is the default working directory.",
    )
    run_as_user = Int(KERNEL_UID, allow_none=True, config=True, help="runAsUser of kernel pods.")
    run_as_group = Int(KERNEL_GID, allow_none=True, config=True, help="runAsGroup of kernel pods.")
    fs_group = Int(
        KERNEL_GID,
        allow_none=True,
        config=True,
        help="fsGroup of kernel pods: the group that can read the connection file.",
    )
    ports = List(
        Int(),
        default_value=[52700, 52701, 52702, 52703, 52704],
        config=True,
        help="shell, iopub, stdin, control, hb ports (each pod has its own IP).",
    )
    grace_seconds = Int(5, config=True, help="terminationGracePeriodSeconds of kernel pods.")
    env_allowlist = List(
        Unicode(), config=True, help="Variables besides KERNEL_* passed from a request to the pod."
    )
    images = List(
        Unicode(),
        config=True,
        help="Images a request may pick with KERNEL_IMAGE besides `image` (default: none).",
    )
    uids = List(
        Int(),
        config=True,
        help="User ids a request may pick with KERNEL_UID besides run_as_user (0 never).",
    )
    gids = List(
        Int(),
        config=True,
        help="Group ids a request may pick with KERNEL_GID besides run_as_group (0 never).",
    )
    runtime_class = Unicode(
        "",
        config=True,
        help="RuntimeClass of kernel pods (e.g. gvisor, kata): a sandboxed runtime the "
        "cluster offers; empty: the cluster's default runtime.",
    )
    egress = Dict(
        value_trait=Dict(),
        config=True,
        help='Destinations kernel pods of this kernelspec may reach: {name: {"to": [...], '
        '"ports": [...]}}, each a NetworkPolicy egress rule; the broker keeps one '
        "NetworkPolicy per kernelspec with them. Empty: no egress at all.",
    )
    curve = Bool(
        True,
        config=True,
        help="Encrypt kernel traffic with CurveZMQ; a kernel that does not speak it "
        "(ipykernel < 7) fails to start with a message saying so.",
    )

    def pod_settings(self, kernelspec: str) -> PodSettings:
        """The operator's settings for this provisioner's pods, as plain data."""
        return PodSettings(
            image=self.image,
            namespace=self.namespace,
            broker=self.broker_name,
            kernelspec=kernelspec,
            command=list(self.command),
            resources=dict(self.resources),
            bounds=Bounds(self.max_cpus, self.max_memory, self.max_gpus),
            node_selector=dict(self.node_selector),
            tolerations=list(self.tolerations),
            volumes=dict(self.volumes),
            default_volumes=list(self.default_volumes),
            working_dirs=list(self.working_dirs),
            run_as_user=self.run_as_user,
            run_as_group=self.run_as_group,
            fs_group=self.fs_group,
            image_pull_policy=self.image_pull_policy,
            ports=tuple(self.ports),
            grace_seconds=self.grace_seconds,
            env_allowlist=list(self.env_allowlist),
            images=list(self.images),
            uids=list(self.uids),
            gids=list(self.gids),
            runtime_class=self.runtime_class,
            egress={name: dict(rule) for name, rule in self.egress.items()},
        )
