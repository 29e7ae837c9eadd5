// The one-node cluster as a workload sees it: a real kubelet on containerd runs a pod from an imported image,
// the pod's projected ServiceAccount token is accepted, kube-proxy carries it to the `kubernetes` ClusterIP,
// CoreDNS answers for cluster.local and for nothing else; and once stopped, the host is as it was.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { nodeNetwork, startNodeCluster, type NodeCluster } from "../../dev/cluster/node-cluster.ts";
import { nodeSysctls, readSysctls } from "../../dev/cluster/host.ts";
import { probeImage } from "../../dev/cluster/images.ts";
import { kubectl } from "../support/kubectl.ts";

const run = promisify(execFile);
const n = nodeNetwork;
/** Paths the node's components would write to if they were not configured into the work dir. */
const configuredAway = [
  "/etc/cni",
  "/opt/cni",
  "/opt/containerd",
  "/var/lib/containerd",
  "/var/log/pods",
  "/etc/kubernetes",
];

let cluster: NodeCluster;
let scratch: string;
const configuredAwayBefore = Object.fromEntries(configuredAway.map((p) => [p, existsSync(p)]));
const inProbe = (...args: string[]) => kubectl(cluster, "exec", "probe", "--", "/ko-app/probe", ...args);

before(async () => {
  cluster = await startNodeCluster({ log: (l) => console.log(`[node-cluster] ${l}`) });
  const t = cluster.timings;
  // From the machine's lock (another test's node cluster may hold it first) to DNS answering.
  const upSecs = (t["ready"] ?? 0) - (t["host lock"] ?? 0);
  console.log(`node-cluster: bring-up ${upSecs.toFixed(1)} s; steps (s from the call): ${JSON.stringify(t)}`);

  const probe = await probeImage();
  await cluster.importImage(probe.archive);
  scratch = await mkdtemp(join(tmpdir(), "node-cluster-test-"));
  const pod = join(scratch, "probe.yaml");
  await writeFile(
    pod,
    `apiVersion: v1
kind: Pod
metadata: {name: probe, namespace: default}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: probe
    image: ${probe.name}
    imagePullPolicy: Never
    securityContext:
      runAsUser: 65532
      runAsNonRoot: true
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
`,
  );
  const podStarted = performance.now();
  await kubectl(cluster, "apply", "-f", pod);
  await kubectl(cluster, "wait", "--for=condition=Ready", "pod/probe", "--timeout=120s");
  console.log(
    `node-cluster: probe pod Ready ${((performance.now() - podStarted) / 1000).toFixed(1)} s after apply`,
  );
});
after(async () => {
  await cluster?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("one-node cluster", () => {
  it("registers its node, Ready, at the node address with the kubelet and runtime built here", async () => {
    const node = JSON.parse(await kubectl(cluster, "get", "node", n.nodeName, "-o", "json"));
    const ready = node.status.conditions.find((c: { type: string }) => c.type === "Ready");
    assert.equal(ready.status, "True");
    assert.deepEqual(
      node.status.addresses
        .filter((a: { type: string }) => a.type === "InternalIP")
        .map((a: { address: string }) => a.address),
      [n.nodeAddress],
    );
    assert.equal(node.status.nodeInfo.kubeletVersion, "v1.34.3");
    assert.match(node.status.nodeInfo.containerRuntimeVersion, /^containerd:\/\/1\.6\./);
  });

  it("runs a pod from an imported image with its own IP, and the API server accepts its projected token", async () => {
    const pod = JSON.parse(await kubectl(cluster, "get", "pod", "probe", "-o", "json"));
    assert.equal(pod.status.phase, "Running");
    assert.match(pod.status.podIP, /^10\.244\.0\.\d+$/);
    assert.notEqual(pod.status.podIP, n.podGateway);
    // whoami posts a SelfSubjectReview with the mounted token to $KUBERNETES_SERVICE_HOST, checking the
    // API server's certificate against the mounted ca.crt.
    assert.equal((await inProbe("whoami")).trim(), "system:serviceaccount:default:default");
  });

  it("reaches the kubernetes ClusterIP through kube-proxy, and nothing off the machine", async () => {
    const { stdout: nat } = await run("iptables", ["-t", "nat", "-S"]);
    assert.match(
      nat,
      new RegExp(`default/kubernetes:https.* --to-destination ${n.nodeAddress}:${n.apiPort}`),
    );
    assert.equal(
      (await inProbe("whoami", `${n.apiServiceIp}:443`)).trim(),
      "system:serviceaccount:default:default",
    );
    // The pod's only routes are its bridge and the Service range.
    await assert.rejects(inProbe("query", "192.0.2.1", "example.com"), /network is unreachable/);
  });

  it("resolves cluster.local names through CoreDNS and refuses every other name, forwarding none", async () => {
    assert.equal((await inProbe("resolve", "kubernetes.default.svc.cluster.local")).trim(), n.apiServiceIp);
    // the search list the kubelet wrote (default.svc.cluster.local ...) with its clusterDNS nameserver
    assert.equal((await inProbe("resolve", "kubernetes.default")).trim(), n.apiServiceIp);
    // by name: DNS, kube-proxy and the API server's kubernetes.default.svc SAN together
    assert.equal(
      (await inProbe("whoami", "kubernetes.default.svc:443")).trim(),
      "system:serviceaccount:default:default",
    );
    const outside = await inProbe("query", n.dnsServiceIp, "example.com");
    assert.match(outside, /^rcode=(REFUSED|NXDOMAIN) answers=$/m);
    await assert.rejects(inProbe("resolve", "example.com"));
    // CoreDNS logged the search-list tries inside its zone; example.com. itself matched no zone, so it was
    // refused before any plugin saw it.
    const logs = await kubectl(cluster, "-n", "kube-system", "logs", "deployment/coredns");
    assert.match(logs, /"A IN example\.com\.cluster\.local\. udp .*" NXDOMAIN /);
    assert.doesNotMatch(logs, /"A IN example\.com\. /);
    const { stdout: plugins } = await run(join(cluster.binDir, "coredns"), ["-plugins"]);
    assert.doesNotMatch(plugins, /forward|proxy/);
  });

  it("after stop(), leaves the host as it found it", async () => {
    const { dir } = cluster;
    const report = await cluster.stop();
    console.log(`node-cluster: teardown ${report.seconds} s`);
    assert.deepEqual(report.leftovers, []);

    const ours = readdirSync("/proc")
      .filter((e) => /^\d+$/.test(e))
      .map((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
        } catch {
          return "";
        }
      })
      // Every component names the work dir in its arguments (the shims by containerd's socket); the pods'
      // processes are the images' entry points. Other control planes (npm test's own) share the binaries.
      .filter((cmd) => cmd.includes(dir) || /^\/(pause|ko-app\/probe|ko-app\/coredns)( |$)/.test(cmd));
    assert.deepEqual(ours, [], "no process of the cluster runs");
    const mounts = readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .filter((l) => l.includes(dir) || l.includes("/run/netns/cni-") || l.includes("/run/containerd"));
    assert.deepEqual(mounts, []);
    assert.equal(existsSync(dir), false, "the work dir is gone");
    const { stdout: netns } = await run("ip", ["netns", "list"]);
    assert.doesNotMatch(netns, /^cni-/m);
    const { stdout: links } = await run("ip", ["-o", "link", "show"]);
    assert.doesNotMatch(links, new RegExp(`: (${n.nodeLink}|${n.podBridge})[:@]`));
    for (const save of ["iptables-save", "ip6tables-save"]) {
      const { stdout } = await run(save);
      assert.doesNotMatch(stdout, /KUBE-/, `${save} shows no KUBE-* chain or rule`);
    }
    const cgroups = readdirSync("/sys/fs/cgroup").filter((h) => existsSync(`/sys/fs/cgroup/${h}/kubepods`));
    assert.deepEqual(cgroups, [], "no kubepods cgroup");
    // As the cluster found them when it took the machine's lock: another node cluster (another test file)
    // may have been running when this file started.
    const found = cluster.foundHost;
    assert.deepEqual(readSysctls(nodeSysctls), found.sysctls);
    // /run/netns may hold other tests' namespaces by now; the cluster's own (cni-*) were checked above.
    const paths = Object.keys(found.paths).filter((p) => p !== "/run/netns");
    assert.deepEqual(
      Object.fromEntries(paths.map((p) => [p, existsSync(p)])),
      Object.fromEntries(paths.map((p) => [p, found.paths[p]])),
    );
    assert.deepEqual(Object.fromEntries(configuredAway.map((p) => [p, existsSync(p)])), configuredAwayBefore);
  });
});
