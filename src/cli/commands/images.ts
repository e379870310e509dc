import { parse, usageError } from "../args.js";
import { showHelp, type Command } from "../command.js";
import { ago, json, size, table } from "../output.js";
import { progressBar, progressText, rate } from "../pull-progress.js";
import type { PullProgressJson } from "../../contract/images.js";

export const images: Command = {
  name: "images",
  summary: "list cached images",
  help: `usage: hyperfleet images [-q] [--json]

List the daemon's cached images, most recently used first.

  -q, --quiet   digests only
      --json    the images as the API returns them (a JSON array)
`,
  async run(args, ctx) {
    const p = parse(args, { quiet: { type: "boolean", short: "q" }, json: { type: "boolean" } });
    if (p.help) return showHelp(images, ctx);
    if (p.positionals.length > 0) throw usageError(`unexpected argument '${p.positionals[0]}'`);
    const list = (await ctx.client().images.list()).unwrap();
    if (p.values.json === true) json(ctx.out, list);
    else if (p.values.quiet === true) ctx.out.write(list.map((i) => `${i.digest}\n`).join(""));
    else {
      table(
        ctx.out,
        ["REFERENCE", "DIGEST", "SIZE", "IN USE", "LAST USED"],
        list.map((i) => [i.refs.join(",") || i.resolved_ref, i.digest.slice(0, 19), size(i.size_bytes), i.in_use ? "yes" : "no", ago(i.last_used_at)]),
      );
    }
    return 0;
  },
};

export const pull: Command = {
  name: "pull",
  summary: "pull an image into the daemon's cache",
  help: `usage: hyperfleet pull [-q] [--json] IMAGE

Pull and convert IMAGE so that machines boot from it at once, showing progress on stderr: a bar
(phase, layers and MiB downloaded of the total, rate) on a terminal, one plain line per update
otherwise (at most 10 a second). Prints the image's digest.

  -q, --quiet  no progress
      --json   the image as the API returns it
`,
  async run(args, ctx) {
    const p = parse(args, { quiet: { type: "boolean", short: "q" }, json: { type: "boolean" } });
    if (p.help) return showHelp(pull, ctx);
    if (p.positionals.length !== 1) throw usageError("pull needs exactly one image reference");
    const ref = p.positionals[0]!;
    const t0 = Date.now();
    const tty = ctx.err.isTTY === true;
    let prev: { t: number; bytes: number } | null = null;
    let speed: number | null = null;
    const onProgress = (pr: PullProgressJson) => {
      if (!tty) return void ctx.err.write(progressText(pr));
      const now = { t: Date.now(), bytes: pr.bytes_done };
      speed = rate(prev, now) ?? speed;
      prev = now;
      ctx.err.write(`\r\x1b[K${progressBar(pr, speed)}`);
    };
    try {
      const img = (await ctx.client().images.pull(ref, p.values.quiet === true ? {} : { onProgress })).unwrap();
      if (tty && p.values.quiet !== true) ctx.err.write(`\r\x1b[Kpulled ${ref} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      if (p.values.json === true) json(ctx.out, img);
      else ctx.out.write(`${img.digest}\n`);
      return 0;
    } finally {
      if (tty && p.values.quiet !== true) ctx.err.write("\r\x1b[K");
    }
  },
};

export const rmi: Command = {
  name: "rmi",
  summary: "remove cached images",
  help: `usage: hyperfleet rmi IMAGE...

Remove images from the daemon's cache (by reference or sha256 digest). An image a machine uses is
refused (IMAGE_IN_USE).
`,
  async run(args, ctx) {
    const p = parse(args, {});
    if (p.help) return showHelp(rmi, ctx);
    if (p.positionals.length === 0) throw usageError("rmi needs at least one image reference");
    for (const ref of p.positionals) {
      (await ctx.client().images.remove(ref)).unwrap();
      ctx.out.write(`${ref}\n`);
    }
    return 0;
  },
};
