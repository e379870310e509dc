/**
 * A create request's network policy -> the policy a machine records (docs/adr/0008): defaults
 * filled, CIDRs parsed and written in one canonical form (`1.2.3.4` becomes `1.2.3.4/32`), so the
 * nft rulesets built from the store never meet request text. Pure.
 */
import { HyperfleetError } from "../core/errors.js";
import { formatCidr, parseCidr } from "../core/ipv4.js";
import type { NetworkPolicy } from "../core/machine.js";

/** What nft set names and /etc/hosts groups accept unchanged (src/network/nft.ts privateNetworkSet). */
export const PRIVATE_NETWORK_PATTERN = "^[a-z0-9][a-z0-9_-]{0,47}$";
/** Each of allow_out and deny_out: every CIDR is a rule in the VM's egress chain. */
export const MAX_POLICY_CIDRS = 64;

export const DEFAULT_POLICY: NetworkPolicy = { internet: true, allowOut: [], denyOut: [], privateNetwork: null };

function invalid(field: string, message: string): HyperfleetError {
  return new HyperfleetError("INVALID_ARGUMENT", `${field}: ${message}`, { details: { field } });
}

/** One CIDR of allow_out/deny_out; INVALID_ARGUMENT naming `field` (with the fix for set host bits). */
export function policyCidr(text: string, field: string): string {
  const strict = parseCidr(text);
  if (strict !== undefined) return formatCidr(strict);
  const loose = parseCidr(text, false);
  if (loose !== undefined) throw invalid(field, `'${text}' has host bits set: did you mean ${formatCidr(loose)}?`);
  throw invalid(field, `'${text}' is not an IPv4 address or CIDR (like 10.0.0.0/8)`);
}

function cidrList(list: readonly string[] | undefined, field: string): string[] {
  if (list === undefined) return [];
  if (list.length > MAX_POLICY_CIDRS) throw invalid(field, `at most ${MAX_POLICY_CIDRS} entries, got ${list.length}`);
  // Duplicates would only repeat a rule: keep the first of each.
  return [...new Set(list.map((c, i) => policyCidr(c, `${field}[${i}]`)))];
}

/** The request's policy with defaults (internet on, no lists, no private network). */
export function networkPolicy(req: Partial<NetworkPolicy>): NetworkPolicy {
  const name = req.privateNetwork ?? null;
  if (name !== null && !new RegExp(PRIVATE_NETWORK_PATTERN).test(name)) {
    throw invalid("network.private_network", "must be 1-48 lowercase letters, digits, '_' or '-', starting with a letter or digit");
  }
  return {
    internet: req.internet ?? DEFAULT_POLICY.internet,
    allowOut: cidrList(req.allowOut, "network.allow_out"),
    denyOut: cidrList(req.denyOut, "network.deny_out"),
    privateNetwork: name,
  };
}
