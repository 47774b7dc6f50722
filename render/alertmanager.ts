import type { MonitoringConfig } from "../config/schema";
import { egressNode } from "./policy";
import { toYaml } from "./yaml";

/**
 * Alertmanager: critical alerts page (ntfy), warnings go out as a digest (email), everything to the webhook if
 * one is set. Secrets are never in the file: it names files (`*_file`) that hold one secret each.
 */

/** The receiver when nothing is configured: the ntfy bridge beside Alertmanager (webhook in, ntfy out). */
const BRIDGE = {
  name: "ntfy-bridge",
  webhook_configs: [{ url: "http://alertmanager-ntfy:8080", send_resolved: true }],
};

const SECRETS_DIR = "/etc/alertmanager/secrets";
/** Where each receiver's secret is read from, inside the Alertmanager container. */
export const SECRET_PATHS = {
  email: `${SECRETS_DIR}/smtp-password`,
  ntfy: `${SECRETS_DIR}/ntfy-token`,
  webhook: `${SECRETS_DIR}/webhook-token`,
} as const;

/** The secret files Alertmanager needs: path -> the secret config key holding the value. */
export function alertmanagerSecretFiles(m: MonitoringConfig): Record<string, { config: string }> {
  const r = m.receivers;
  const keys: [string, string | undefined][] = [
    [SECRET_PATHS.email, r.email?.passwordSecret],
    [SECRET_PATHS.ntfy, r.ntfy?.tokenSecret],
    [SECRET_PATHS.webhook, r.webhook?.bearerSecret],
  ];
  return Object.fromEntries(keys.flatMap(([p, key]) => (key === undefined ? [] : [[p, { config: key }]])));
}

const bearer = (file: string) => ({
  http_config: { authorization: { type: "Bearer", credentials_file: file } },
});

/**
 * An ntfy topic URL that formats Alertmanager's JSON itself (ntfy's message templates), at high priority: no
 * bridge needed for a topic elsewhere.
 */
export function ntfyWebhookUrl(topic: string): string {
  const url = new URL(topic);
  url.searchParams.set("tpl", "yes");
  url.searchParams.set("t", "[{{.status}}] {{.commonLabels.alertname}} on {{.commonLabels.site}}");
  url.searchParams.set("m", "{{range .alerts}}{{.annotations.summary}}\n{{end}}");
  url.searchParams.set("p", "high");
  return url.toString();
}

export function renderAlertmanagerConfig(m: MonitoringConfig): string {
  const { email, ntfy, webhook } = m.receivers;
  const receivers: object[] = [BRIDGE];
  if (ntfy) {
    receivers.push({
      name: "ntfy",
      webhook_configs: [{ url: ntfyWebhookUrl(ntfy.url), send_resolved: true, ...bearer(SECRET_PATHS.ntfy) }],
    });
  }
  if (email) {
    receivers.push({
      name: "email",
      email_configs: [
        {
          to: email.to.join(", "),
          from: email.from,
          smarthost: email.smarthost,
          auth_username: email.username ?? email.from,
          auth_password_file: SECRET_PATHS.email,
          require_tls: true,
          send_resolved: true,
        },
      ],
    });
  }
  if (webhook) {
    receivers.push({
      name: "webhook",
      webhook_configs: [
        {
          url: webhook.url,
          send_resolved: true,
          ...(webhook.bearerSecret === undefined ? {} : bearer(SECRET_PATHS.webhook)),
        },
      ],
    });
  }
  const page = ntfy ? "ntfy" : BRIDGE.name;
  const digest = email ? "email" : page;
  return toYaml({
    route: {
      receiver: page,
      group_by: ["alertname", "site"],
      group_wait: "30s",
      group_interval: "5m",
      repeat_interval: "4h",
      routes: [
        ...(webhook
          ? [{ receiver: "webhook", matchers: ['severity=~"critical|warning"'], continue: true }]
          : []),
        { receiver: page, matchers: ['severity="critical"'], repeat_interval: "1h" },
        // A digest: collected for a while, repeated daily.
        {
          receiver: digest,
          matchers: ['severity="warning"'],
          group_wait: "5m",
          group_interval: "1h",
          repeat_interval: "24h",
        },
      ],
    },
    inhibit_rules: [
      // A site that is down explains its other alerts; its mesh node's says whether it is cut off or dead.
      {
        source_matchers: ['alertname="SiteDown"'],
        target_matchers: ['alertname!~"SiteDown|MeshNodeOffline"'],
        equal: ["site"],
      },
      // Without the control plane's own tailnet node, or Prometheus' egress node, every other site looks down.
      // (Its backup job's egress node going offline darkens nothing else.)
      {
        source_matchers: [
          'alertname="MeshNodeOffline"',
          'role="control-plane"',
          `container=~"tailscale|${egressNode("prometheus")}"`,
        ],
        target_matchers: ['alertname="SiteDown"', 'role!="control-plane"'],
      },
    ],
    receivers,
  });
}
