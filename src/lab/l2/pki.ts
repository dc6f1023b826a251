// Credentials of one L2 run, made fresh on the host with openssl (ECDSA P-256: quick to make,
// quick to use under TCG) and never kept: a cluster CA, the apiserver's serving certificate, a
// client certificate per component (the names and groups RKE2 gives them), the service-account
// key pair, and the kubeconfigs that use them. Nothing of it is committed or reused.
import path from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { run } from '../../lib/exec.js';

export const NODE_NAME = 'lab-node';
/** The container's address on the guest's bridge (lab/lxc.conf.in). */
export const NODE_IP = '10.77.0.2';
/** RKE2's default service range; its first address is the kubernetes Service. */
export const SERVICE_CIDR = '10.43.0.0/16';
export const SERVICE_IP = '10.43.0.1';
export const APISERVER_PORT = 6443;

/** Client identities: file stem, CN, O (groups). */
const CLIENTS: [string, string, string | undefined][] = [
  ['admin', 'kubelet-lxc-lab-admin', 'system:masters'],
  ['controller-manager', 'system:kube-controller-manager', undefined],
  ['scheduler', 'system:kube-scheduler', undefined],
  ['kubelet', `system:node:${NODE_NAME}`, 'system:nodes'],
  // the apiserver's identity towards the kubelet (exec, logs, port-forward)
  ['apiserver-kubelet-client', 'kube-apiserver-kubelet-client', 'system:masters'],
];

export interface RunPki {
  dir: string;
  /** kubeconfig for the host (kubectl, e2e.test) through the forwarded port */
  hostKubeconfig: string;
}

async function openssl(args: string[]): Promise<void> {
  await run('openssl', args, { timeoutMs: 60_000 });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * Writes dir/{ca,apiserver,<clients>}.{crt,key}, sa.{key,pub} and kubeconfigs: <name>.kubeconfig
 * for the container (server https://127.0.0.1:6443, files under containerDir), host.kubeconfig
 * for the host (server https://127.0.0.1:<hostPort>, files under dir).
 */
export async function makeRunPki(dir: string, o: { hostPort: number; containerDir: string }): Promise<RunPki> {
  await mkdir(dir, { recursive: true });
  const f = (n: string) => path.join(dir, n);
  await openssl(['req', '-x509', ...EC, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '30', '-subj', '/CN=kubelet-lxc-lab-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const leaf = async (name: string, subj: string, ext: string[]) => {
    await openssl(['req', '-x509', ...EC, '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`), '-days', '30', '-subj', subj, '-CA', f('ca.crt'), '-CAkey', f('ca.key'), ...ext.flatMap((e) => ['-addext', e])]);
  };
  const sans = ['DNS:localhost', `DNS:${NODE_NAME}`, 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local', 'IP:127.0.0.1', `IP:${NODE_IP}`, `IP:${SERVICE_IP}`];
  await leaf('apiserver', '/CN=kube-apiserver', ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth', `subjectAltName=${sans.join(',')}`]);
  for (const [name, cn, o_] of CLIENTS) {
    await leaf(name, `${o_ ? `/O=${o_}` : ''}/CN=${cn}`, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=clientAuth']);
  }
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', f('sa.key')]);
  await openssl(['ec', '-in', f('sa.key'), '-pubout', '-out', f('sa.pub')]);
  for (const [name] of CLIENTS) {
    if (name === 'apiserver-kubelet-client') continue;
    await writeFile(f(`${name}.kubeconfig`), kubeconfig(`https://127.0.0.1:${APISERVER_PORT}`, o.containerDir, name));
  }
  const hostKubeconfig = f('host.kubeconfig');
  await writeFile(hostKubeconfig, kubeconfig(`https://127.0.0.1:${o.hostPort}`, dir, 'admin'));
  return { dir, hostKubeconfig };
}

function kubeconfig(server: string, dir: string, user: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: lab',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority: ${dir}/ca.crt`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    client-certificate: ${dir}/${user}.crt`,
    `    client-key: ${dir}/${user}.key`,
    'contexts:',
    '- name: lab',
    '  context:',
    '    cluster: lab',
    `    user: ${user}`,
    'current-context: lab',
    '',
  ].join('\n');
}
