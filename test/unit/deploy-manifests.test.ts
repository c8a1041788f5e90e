/**
 * deploy/: every Kubernetes manifest validates against the Kubernetes API schema (a strict
 * subset of the official v1.30 OpenAPI, test/fixtures/kubernetes, with ajv), and the
 * pieces agree with each other and with llmrt: the Service and the budget select the
 * Deployment's pods, probes and ports name real ports, the grace period covers preStop
 * plus llmrt's drain, Prometheus scrapes /metrics on the serving port, every flag passed
 * exists in the CLI, and the Dockerfile serves on the port the manifests use.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { Command } from "commander";
import { parseAllDocuments } from "yaml";
import { registerBuild } from "../../src/cli/build.js";
import { registerServe } from "../../src/cli/serve.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const k8sDir = join(root, "deploy", "k8s");
const schema = JSON.parse(readFileSync(join(root, "test", "fixtures", "kubernetes", "kubernetes-v1.30-subset.json"), "utf8"));

const DEFINITION: Record<string, string> = {
  "apps/v1/Deployment": "io.k8s.api.apps.v1.Deployment",
  "v1/Service": "io.k8s.api.core.v1.Service",
  "v1/PersistentVolumeClaim": "io.k8s.api.core.v1.PersistentVolumeClaim",
  "policy/v1/PodDisruptionBudget": "io.k8s.api.policy.v1.PodDisruptionBudget",
  "batch/v1/Job": "io.k8s.api.batch.v1.Job",
};

type Manifest = any; // parsed YAML: shapes are what the schema check vouches for

function manifests(): { file: string; doc: Manifest }[] {
  return readdirSync(k8sDir)
    .filter((f) => f.endsWith(".yaml"))
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(k8sDir, file), "utf8")).map((d) => {
        assert.deepEqual(d.errors, [], `${file}: YAML errors`);
        return { file, doc: d.toJS() as Manifest };
      }),
    );
}

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(schema, "k8s");
const validator = (kind: string) => ajv.getSchema(`k8s#/definitions/${DEFINITION[kind]}`)!;

function errorsOf(doc: Manifest): string[] {
  const kind = `${doc.apiVersion}/${doc.kind}`;
  if (!DEFINITION[kind]) return [`no schema for ${kind}: add its definition to the fixture`];
  const v = validator(kind);
  return v(doc) ? [] : v.errors!.map((e) => `${e.instancePath || "/"} ${e.message}${e.params && "additionalProperty" in e.params ? `: ${e.params.additionalProperty}` : ""}`);
}

const byKind = (kind: string) => manifests().filter((m) => m.doc.kind === kind).map((m) => m.doc);

test("every manifest in deploy/k8s validates against the Kubernetes schema", () => {
  const all = manifests();
  assert.ok(all.length >= 5);
  for (const { file, doc } of all) assert.deepEqual(errorsOf(doc), [], `${file} (${doc.kind})`);
  assert.deepEqual([...new Set(all.map((m) => m.doc.kind))].sort(), ["Deployment", "Job", "PersistentVolumeClaim", "PodDisruptionBudget", "Service"]);
});

test("the validator bites: a misspelt field, a wrong type and a missing required field fail", () => {
  const [dep] = byKind("Deployment");
  const typo = structuredClone(dep);
  typo.spec.template.spec.containers[0].readinesProbe = typo.spec.template.spec.containers[0].readinessProbe;
  assert.match(errorsOf(typo).join("\n"), /must NOT have additional properties: readinesProbe/);
  const wrong = structuredClone(dep);
  wrong.spec.replicas = "two";
  assert.match(errorsOf(wrong).join("\n"), /\/spec\/replicas must be integer/);
  const missing = structuredClone(dep);
  delete missing.spec.selector;
  assert.match(errorsOf(missing).join("\n"), /must have required property 'selector'/);
});

test("the pieces fit: selectors, named ports, probes on /health, drain within the grace period, Prometheus on /metrics, the volume claim", () => {
  const [dep] = byKind("Deployment");
  const [svc] = byKind("Service");
  const [pdb] = byKind("PodDisruptionBudget");
  const [pvc] = byKind("PersistentVolumeClaim");
  const pod = dep.spec.template;
  const labels = pod.metadata.labels;
  const selects = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
  assert.ok(selects(dep.spec.selector.matchLabels), "Deployment selector matches its pods");
  assert.ok(selects(svc.spec.selector), "Service selects the pods");
  assert.ok(selects(pdb.spec.selector.matchLabels), "the budget covers the pods");

  const c = pod.spec.containers[0];
  const ports = new Map<string, number>(c.ports.map((p: Manifest) => [p.name, p.containerPort]));
  const port = (p: string | number) => (typeof p === "number" ? p : ports.get(p));
  assert.equal(port(svc.spec.ports[0].targetPort), 8000);
  for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    assert.equal(c[probe].httpGet.path, "/health", probe);
    assert.equal(port(c[probe].httpGet.port), 8000, probe);
  }
  const arg = (flag: string) => c.args[c.args.indexOf(flag) + 1];
  assert.equal(arg("--host"), "0.0.0.0"); // llmrt listens on loopback by default
  assert.equal(Number(arg("--port")), 8000);
  // SIGTERM arrives after preStop; llmrt then drains for --shutdown-timeout and exits 0
  const preStop = Number(c.lifecycle.preStop.exec.command[1]);
  const drain = Number(arg("--shutdown-timeout")) / 1000;
  assert.ok(dep.spec.template.spec.terminationGracePeriodSeconds >= preStop + drain + 5, "grace period covers preStop + drain");
  // a rolling update never drops below the replica count (each replica holds a whole model)
  assert.equal(dep.spec.strategy.rollingUpdate.maxUnavailable, 0);

  for (const a of [pod.metadata.annotations, svc.metadata.annotations]) {
    assert.equal(a["prometheus.io/scrape"], "true");
    assert.equal(Number(a["prometheus.io/port"]), 8000);
    assert.equal(a["prometheus.io/path"], "/metrics");
  }
  const claim = pod.spec.volumes.find((v: Manifest) => v.persistentVolumeClaim)?.persistentVolumeClaim.claimName;
  assert.equal(claim, pvc.metadata.name);
  assert.equal(c.volumeMounts.find((m: Manifest) => m.name === "models").mountPath, "/models");
  assert.ok(arg("--model").startsWith("/models/"));
});

test("every flag the manifests pass exists in the CLI; the Dockerfile serves on the manifests' port", () => {
  const program = new Command();
  registerServe(program);
  registerBuild(program);
  const flags = (name: string) => new Set(program.commands.find((c) => c.name() === name)!.options.flatMap((o) => [o.long, o.short].filter(Boolean)));
  const [dep] = byKind("Deployment");
  const [job] = byKind("Job");
  for (const [args, cmd] of [[dep.spec.template.spec.containers[0].args, "serve"], [job.spec.template.spec.containers[0].args, "build"]] as [string[], string][]) {
    assert.equal(args[0], cmd);
    for (const a of args.filter((x) => x.startsWith("-"))) assert.ok(flags(cmd).has(a), `llmrt ${cmd} has no ${a}`);
  }
  assert.ok(["Never", "OnFailure"].includes(job.spec.template.spec.restartPolicy)); // the API refuses Always for a Job

  const docker = readFileSync(join(root, "deploy", "Dockerfile"), "utf8");
  assert.match(docker, /^EXPOSE 8000$/m);
  assert.match(docker, /ENTRYPOINT \["node", "dist\/src\/cli\/main\.js"\]/);
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  assert.equal(pkg.bin.llmrt, "dist/src/cli/main.js");
  assert.match(docker, /^USER node$/m);
  assert.equal(dep.spec.template.spec.securityContext.runAsUser, 1000); // the node image's "node" user
});
