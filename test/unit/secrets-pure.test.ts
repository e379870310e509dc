/** Pure pieces that keep secrets out of logs and child processes. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { redactUrl } from "../../src/daemon/redact-url.js";
import { skopeoEnv } from "../../src/images/skopeo.js";

test("redactUrl masks values of credential-looking query keys only", () => {
  assert.equal(redactUrl("/machines"), "/machines");
  assert.equal(redactUrl("/machines?status=running"), "/machines?status=running");
  assert.equal(redactUrl("/a?token=x&b=1&API_KEY=y&password=z&auth=w"), "/a?token=[redacted]&b=1&API_KEY=[redacted]&password=[redacted]&auth=[redacted]");
  assert.equal(redactUrl("/a?X-Amz-Signature=s&X-Amz-Credential=c&sig=q&client_secret=v&sessionid=t"), "/a?X-Amz-Signature=[redacted]&X-Amz-Credential=[redacted]&sig=[redacted]&client_secret=[redacted]&sessionid=[redacted]");
  // Encoded keys are judged as decoded; undecodable ones as they are; keys without a value stay.
  assert.equal(redactUrl("/a?api%5Fkey=x&to%ZZken=y&token"), "/a?api%5Fkey=[redacted]&to%ZZken=y&token");
});

test("skopeoEnv passes PATH, proxies and CA bundles only; HOME is the work dir", () => {
  const env = skopeoEnv(
    { PATH: "/p", HYPERFLEET_API_KEY: "k", HTTPS_PROXY: "http://proxy:3128", no_proxy: "localhost", SSL_CERT_FILE: "/ca.pem", DOCKER_CONFIG: "/root/.docker", REGISTRY_AUTH_FILE: "/a.json", HOME: "/root", AWS_SECRET_ACCESS_KEY: "s" },
    { registriesConfPath: "/r.conf", workDir: "/w" },
  );
  assert.deepEqual(env, {
    PATH: "/p",
    HTTPS_PROXY: "http://proxy:3128",
    no_proxy: "localhost",
    SSL_CERT_FILE: "/ca.pem",
    CONTAINERS_REGISTRIES_CONF: "/r.conf",
    HOME: "/w",
    XDG_RUNTIME_DIR: "/w",
    TMPDIR: "/w",
  });
  assert.equal(skopeoEnv({}, { registriesConfPath: "/r", workDir: "/w" }).PATH, "/usr/local/bin:/usr/bin:/bin");
});
