// The one-node cluster's addresses and the configuration files of its node components, as pure functions of the
// work directory: containerd, the CNI bridge, the kubelet and kube-proxy. Every path a component would otherwise
// put on the host (/var/lib/kubelet, /var/log/pods, /opt/containerd, /etc/cni/net.d) is moved into the work dir.
import { join } from "node:path";

export const nodeNetwork = {
  nodeName: "kl-node",
  /** on a bridge with no ports (this machine has no dummy links): the node IP and the API server's address */
  nodeAddress: "10.255.0.1",
  nodeLink: "kl0",
  /** made by the CNI bridge plugin */
  podBridge: "klbr0",
  podCidr: "10.244.0.0/24",
  podGateway: "10.244.0.1",
  serviceCidr: "10.96.0.0/16",
  /** the `kubernetes` Service */
  apiServiceIp: "10.96.0.1",
  /** the `kube-dns` Service in front of CoreDNS */
  dnsServiceIp: "10.96.0.10",
  clusterDomain: "cluster.local",
  apiPort: 6443,
  kubeletPort: 10250,
} as const;

const n = nodeNetwork;

/** Where each component keeps its state and logs, under the work dir. */
export function nodePaths(dir: string) {
  return {
    dir,
    logs: join(dir, "logs"),
    etc: join(dir, "etc"),
    controlPlane: join(dir, "controlplane"),
    containerd: join(dir, "containerd"),
    containerdSocket: join(dir, "containerd", "containerd.sock"),
    cniConfDir: join(dir, "cni", "net.d"),
    cniIpam: join(dir, "cni", "ipam"),
    kubeletRoot: join(dir, "kubelet"),
    podLogs: join(dir, "pod-logs"),
    manifests: join(dir, "manifests"),
  };
}
export type NodePaths = ReturnType<typeof nodePaths>;

export function containerdToml(p: NodePaths, sandboxImage: string): string {
  return `version = 2
root = "${p.containerd}/root"
state = "${p.containerd}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "${p.containerdSocket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "${p.containerd}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${sandboxImage}"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  tolerate_missing_hugetlb_controller = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${p.cniConfDir}"
`;
}

/** Pods get an address on the bridge and one route, to the Service range: nothing off the machine is reachable. */
export function cniConflist(p: NodePaths): string {
  return JSON.stringify(
    {
      cniVersion: "0.4.0",
      name: "klpods",
      plugins: [
        {
          type: "bridge",
          bridge: n.podBridge,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: n.podCidr, gateway: n.podGateway }]],
            routes: [{ dst: n.serviceCidr }],
            dataDir: p.cniIpam,
          },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

/**
 * `resolvConf: ""` gives pods no upstream nameserver; the GC and eviction thresholds keep the kubelet from
 * removing imported images or evicting pods on a shared disk. protectKernelDefaults stays false: true makes the
 * kubelet exit on this host, false makes it rewrite a few sysctls, which the teardown restores.
 */
export function kubeletConfig(p: NodePaths, pki: string): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
containerRuntimeEndpoint: unix://${p.containerdSocket}
staticPodPath: ${p.manifests}
podLogsDir: ${p.podLogs}
volumePluginDir: ${p.kubeletRoot}/volume-plugins
address: ${n.nodeAddress}
port: ${n.kubeletPort}
readOnlyPort: 0
healthzBindAddress: ${n.nodeAddress}
healthzPort: 10248
tlsCertFile: ${pki}/kubelet-serving.crt
tlsPrivateKeyFile: ${pki}/kubelet-serving.key
rotateCertificates: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${pki}/ca.crt}
authorization:
  mode: Webhook
clusterDomain: ${n.clusterDomain}
clusterDNS: ["${n.dnsServiceIp}"]
resolvConf: ""
registerNode: true
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
fileCheckFrequency: 5s
syncFrequency: 10s
nodeStatusReportFrequency: 10s
`;
}

export function kubeletArgs(p: NodePaths): string[] {
  return [
    `--config=${join(p.etc, "kubelet-config.yaml")}`,
    `--kubeconfig=${join(p.etc, "kubelet.kubeconfig")}`,
    `--hostname-override=${n.nodeName}`,
    `--node-ip=${n.nodeAddress}`,
    `--root-dir=${p.kubeletRoot}`,
    `--cert-dir=${p.kubeletRoot}/pki`,
    "--v=2",
  ];
}

/** The conntrack zeros and localhostNodePorts: false keep kube-proxy off host-wide sysctls. */
export function kubeProxyConfig(p: NodePaths): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${join(p.etc, "kube-proxy.kubeconfig")}
mode: iptables
hostnameOverride: ${n.nodeName}
bindAddress: ${n.nodeAddress}
healthzBindAddress: ${n.nodeAddress}:10256
metricsBindAddress: ${n.nodeAddress}:10249
clusterCIDR: ${n.podCidr}
detectLocalMode: ClusterCIDR
nodePortAddresses: ["${n.nodeAddress}/32"]
iptables:
  localhostNodePorts: false
  masqueradeAll: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`;
}
