// The dependency rules of docs/ARCHITECTURE.md, enforced by ESLint's own no-restricted-imports
// (no plugin: dependency-cruiser needs Node >= 22, and eslint-plugin-boundaries would need a native
// TypeScript resolver to follow our `.js` specifiers to `.ts` files, passing silently when it can't).
// All our imports are relative, so a file at depth d inside src/<layer>/ leaves its layer exactly
// when its specifier starts with d+1 "../"; the segment after them is the layer it reaches.

// layer -> the other layers it may import. A layer absent here may import none of ours.
export const LAYER_RULES = {
  core: { may: [], why: "core imports nothing of ours" },
  contract: { may: ["core"], why: "contract (the wire) imports only core" },
  host: { may: ["core"], why: "host utilities import only core" },
  config: { may: ["core"], why: "config imports only core" },
  agent: { may: ["core", "host"], why: "adapters import only core and host" },
  assets: { may: ["core", "host"], why: "adapters import only core and host" },
  store: { may: ["core", "host"], why: "adapters import only core and host" },
  // VM networking (docs/adr/0008): address plan, rulesets and the Linux fabric behind the port.
  network: { may: ["core", "host"], why: "network imports only core and host" },
  // Image root disks share the base disk's layout and tool runner.
  images: { may: ["core", "host", "assets"], why: "images imports only core, host and assets" },
  // The agent client waits for readiness; the guest assets are what a VM boots.
  vmm: { may: ["core", "host", "agent", "assets"], why: "vmm imports only core, host, agent and assets" },
  workload: { may: ["core", "host", "agent", "vmm"], why: "workload imports only core, host, agent and vmm" },
  machines: {
    may: ["core", "host", "agent", "assets", "vmm", "store", "images", "workload", "network"],
    why: "machines drives the adapters; it never imports api, config, daemon, embed or cli",
  },
  // The per-VM URL proxy (issue 14): machines come through its ProxyDirectory port, never the store.
  proxy: { may: ["core", "host"], why: "proxy imports only core and host (machines come through its ProxyDirectory port)" },
  api: { may: ["core", "contract"], why: "api imports only core and contract (it calls the service ports)" },
  daemon: {
    may: ["core", "contract", "host", "config", "agent", "assets", "store", "images", "vmm", "workload", "machines", "api", "network", "proxy"],
    why: "daemon is the composition root; it does not import embed or cli",
  },
  // Library machines bring their own network up (docs/adr/0008, "Library machines").
  // An imageRef is pulled by the daemon's image code with the daemon's registry settings (config/library.ts).
  embed: {
    may: ["core", "host", "agent", "assets", "vmm", "network", "images", "config"],
    why: "embed wires only vmm, network and images pieces and reads the registry settings (never machines, store, api or daemon)",
  },
  // The HTTP client: the wire contract and core's errors and Result, nothing of the server.
  sdk: { may: ["core", "contract"], why: "sdk imports only core and contract (it never runs server code)" },
  cli: { may: ["core", "contract", "daemon", "sdk"], why: "cli talks to the server through sdk and runs it only through daemon" },
};

// The package entry (src/index.ts) re-exports the in-process facade, the HTTP client and their types.
const ENTRY_MAY = ["core", "agent", "vmm", "embed", "sdk"];

const MAX_DEPTH = 4;
const up = (n) => String.raw`\.\./`.repeat(n);
const alt = (names) => (names.length ? `(?!(${names.join("|")})/)` : "");

function restrict(files, regex, message) {
  return {
    files,
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ regex, message: `${message} (docs/ARCHITECTURE.md)` }] }],
    },
  };
}

export function layerConfigs() {
  const blocks = [];
  for (const [layer, { may, why }] of Object.entries(LAYER_RULES)) {
    for (let depth = 0; depth <= MAX_DEPTH; depth++) {
      const glob = `src/${layer}/${"*/".repeat(depth)}*.ts`;
      blocks.push(restrict([glob], `^${up(depth + 1)}${alt(may)}`, why));
    }
  }
  blocks.push(restrict(["src/index.ts"], String.raw`^\./${alt(ENTRY_MAY)}`, "the package entry exports only core, agent, vmm, embed and sdk"));
  // A dynamic import escapes no-restricted-imports; only cli loads the daemon lazily.
  blocks.push({
    files: ["src/**/*.ts"],
    ignores: ["src/cli/**"],
    rules: {
      "no-restricted-syntax": ["error", { selector: "ImportExpression", message: "use a static import: the layer rules check only those" }],
    },
  });
  blocks.push({
    files: ["src/cli/**/*.ts"],
    rules: {
      "no-restricted-syntax": [
        "error",
        { selector: "ImportExpression:not([source.value=/^[.][.][\\x2F]daemon[\\x2F]/])", message: "cli lazily imports only daemon" },
      ],
    },
  });
  // STYLE: read the environment in one place (src/config), and inject what it yields.
  blocks.push({
    files: ["src/**/*.ts"],
    ignores: ["src/config/**"],
    rules: {
      "no-restricted-properties": ["error", { object: "process", property: "env", message: "read the environment only in src/config" }],
    },
  });
  return blocks;
}
