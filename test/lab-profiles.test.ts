import { describe, expect, it } from 'vitest';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { PROJECT_ROOT } from '../src/manifest.js';
import { compileProfile, LAB_PROFILE_IDS, loadProfiles, parseProfiles, selectProfiles } from '../src/lab/profiles.js';

describe('lab profiles (lab/profiles.json)', () => {
  const profiles = loadProfiles();
  const byId = (id: string) => {
    const p = profiles.find((x) => x.id === id);
    if (!p) throw new Error(`no profile ${id}`);
    return p;
  };

  it('has lxc-default, one profile per fatal site A, B, C, H, I, the garbage tunable, all, a container set up without cpuset, and the unprivileged pair, in that order', () => {
    expect(LAB_PROFILE_IDS).toEqual(['lxc-default', 'A', 'B', 'C', 'H', 'H-garbage', 'I', 'all', 'no-cpuset', 'unprivileged', 'unprivileged-userns']);
  });

  it('no-cpuset plants nothing: its container is set up by a start-host hook the guest finds in lab/hooks/', async () => {
    const p = byId('no-cpuset');
    expect(p.actions).toEqual([]);
    expect(p.emptied).toEqual([]);
    expect(p.lxc).toEqual(['lxc.hook.start-host = /mnt/lab/lab/hooks/no-cpuset.sh']);
    await access(path.join(PROJECT_ROOT, 'lab', 'hooks', 'no-cpuset.sh'), constants.X_OK);
  });

  it('the unprivileged pair plants nothing: with the feature gate off both kubelets must die at /dev/kmsg, with it on both must run (set either way: 1.37 turns it on by default)', () => {
    const bare = byId('unprivileged');
    const gated = byId('unprivileged-userns');
    for (const p of [bare, gated]) {
      expect(p.unprivileged).toBe(true);
      expect(p.actions).toEqual([]);
      expect(p.lxc).toEqual([]);
    }
    expect(bare.kubeletConfig).toEqual({ featureGates: { KubeletInUserNamespace: false } });
    expect(compileProfile(bare)).toContain(`kubelet-config\t${Buffer.from('featureGates:\n  KubeletInUserNamespace: false\n').toString('base64')}`);
    expect(bare.expect.stock.fails).toBe(true);
    expect(bare.expect.patched).toMatchObject({ fails: true, sameErrorAsStock: true, errors: ['/dev/kmsg'] });
    expect(gated.kubeletConfig).toEqual({ featureGates: { KubeletInUserNamespace: true } });
    expect(gated.expect.stock.fails).toBe(false);
    expect(gated.expect.patched).toBeUndefined();
    expect(compileProfile(gated)).toContain(`kubelet-config\t${Buffer.from('featureGates:\n  KubeletInUserNamespace: true\n').toString('base64')}`);
    // a privileged profile stays privileged
    expect(byId('lxc-default').unprivileged).toBe(false);
  });

  it('H-garbage: a garbage (not empty) tunable under protectKernelDefaults, where the patched kubelet must fail as stock does', () => {
    const p = byId('H-garbage');
    expect(p.kubeletConfig).toEqual({ protectKernelDefaults: true });
    expect(p.actions.at(-1)).toEqual({ kind: 'replace', glob: '/proc/sys/vm/overcommit_memory', content: 'one\n' });
    expect(p.expect.patched).toMatchObject({ fails: true, sameErrorAsStock: true });
    expect(p.expect.patched!.errors).toContain('strconv.Atoi: parsing "one": invalid syntax');
    const compiled = compileProfile(p);
    expect(compiled).toContain(`replace\t/proc/sys/vm/overcommit_memory\t${Buffer.from('one\n').toString('base64')}`);
    expect(compiled).toContain(`kubelet-config\t${Buffer.from('protectKernelDefaults: true\n').toString('base64')}`);
    // not part of "all": that profile is of empty values only
    expect(byId('all').actions.some((a) => a.kind === 'replace')).toBe(false);
  });

  it('lxc-default is the neutral profile: stock and patched must report the same facts', () => {
    expect(byId('lxc-default').neutral).toBe(true);
    expect(LAB_PROFILE_IDS.filter((id) => byId(id).neutral)).toEqual(['lxc-default']);
  });

  it('lxc-default changes nothing and expects the stock kubelet to pass, with a reason', () => {
    const p = byId('lxc-default');
    expect(p.actions).toEqual([]);
    expect(p.emptied).toEqual([]);
    expect(p.expect.stock.fails).toBe(false);
    expect(p.expect.stock.reason.length).toBeGreaterThan(10);
  });

  it('empties exactly the files each site reads (fault-sites.md)', () => {
    expect(byId('A').emptied).toEqual([
      '/sys/devices/system/cpu/cpu[0-9]*/topology/core_id',
      '/sys/devices/system/cpu/cpu[0-9]*/topology/physical_package_id',
    ]);
    expect(byId('B').emptied).toEqual(['/sys/devices/system/cpu/online']);
    expect(byId('C').emptied).toEqual(['/sys/devices/system/edac/mc/mc[0-9]*/dimm[0-9]*/size']);
    expect(byId('H').emptied.sort()).toEqual(
      [
        '/proc/sys/vm/overcommit_memory',
        '/proc/sys/vm/panic_on_oom',
        '/proc/sys/kernel/panic',
        '/proc/sys/kernel/panic_on_oops',
        '/proc/sys/kernel/keys/root_maxkeys',
        '/proc/sys/kernel/keys/root_maxbytes',
      ].sort(),
    );
    expect(byId('I').emptied.sort()).toEqual(['/proc/sys/kernel/pid_max', '/proc/sys/kernel/threads-max']);
  });

  it('C builds the EDAC tree the guest lacks: a tmpfs first, then dimm_mem_type and an empty size', () => {
    const c = byId('C');
    expect(c.actions[0]).toEqual({ kind: 'tmpfs', path: '/sys/devices/system/edac/mc' });
    expect(c.actions).toContainEqual({ kind: 'file', path: '/sys/devices/system/edac/mc/mc0/dimm0/size', content: '' });
    expect(c.actions.some((a) => a.kind === 'file' && a.path.endsWith('/dimm_mem_type') && a.content.trim() !== '')).toBe(true);
  });

  it('all is the union of A, B, C, H and I', () => {
    const all = byId('all');
    const union = ['A', 'B', 'C', 'H', 'I'].flatMap((id) => byId(id).emptied);
    expect(all.emptied.sort()).toEqual([...new Set(union)].sort());
    expect(all.actions.length).toBe(['A', 'B', 'C', 'H', 'I'].reduce((n, id) => n + byId(id).actions.length, 0));
    expect(all.expect.stock.fails).toBe(true);
  });

  it('every fault profile is meant to break the stock kubelet, and A and H name the upstream error text', () => {
    for (const id of ['A', 'B', 'C', 'H', 'I', 'all']) expect(byId(id).expect.stock.fails).toBe(true);
    expect(byId('H').expect.stock.errors).toEqual(['Failed to start ContainerManager', 'strconv.Atoi: parsing "": invalid syntax']);
    expect(byId('A').expect.stock.errors).toContain('strconv.Atoi: parsing "": invalid syntax');
    expect(byId('A').expect.stock.errors).toContain('could not detect number of cpus');
  });

  it('compiles to the tab-separated line format ct-init.sh reads, with file content in base64', () => {
    const text = compileProfile(byId('C'));
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^# profile C: /);
    expect(lines).toContain('tmpfs\t/sys/devices/system/edac/mc');
    expect(lines).toContain('file\t/sys/devices/system/edac/mc/mc0/dimm0/size\t');
    expect(lines).toContain(`file\t/sys/devices/system/edac/mc/mc0/dimm0/dimm_mem_type\t${Buffer.from('Unbuffered-DDR4\n').toString('base64')}`);
    expect(lines).toContain('emptied\t/sys/devices/system/edac/mc/mc[0-9]*/dimm[0-9]*/size');
    expect(compileProfile(byId('lxc-default')).trimEnd().split('\n')).toHaveLength(1);
  });

  it('selects by id in file order and rejects unknown ids', () => {
    expect(selectProfiles(profiles, ['H', 'A']).map((p) => p.id)).toEqual(['A', 'H']);
    expect(selectProfiles(profiles).length).toBe(profiles.length);
    expect(() => selectProfiles(profiles, ['A', 'Z'])).toThrow(/unknown lab profile\(s\): Z/);
  });

  const minimal = (over: Record<string, unknown>) => ({
    profiles: [
      {
        id: 'x',
        description: 'd',
        sites: [],
        actions: [],
        emptied: [],
        expect: { stock: { fails: false, reason: 'r' } },
        ...over,
      },
    ],
  });

  it('is data: a new profile needs only an entry', () => {
    const ps = parseProfiles({
      profiles: [
        ...minimal({}).profiles,
        {
          id: 'K',
          description: 'new site',
          sites: ['K'],
          actions: [{ kind: 'empty', glob: '/proc/sys/kernel/ostype' }],
          emptied: ['/proc/sys/kernel/ostype'],
          expect: { stock: { fails: false, reason: 'only logged' } },
        },
      ],
    });
    expect(ps.map((p) => p.id)).toEqual(['x', 'K']);
    expect(compileProfile(ps[1]!)).toContain('empty\t/proc/sys/kernel/ostype\n');
  });

  it('rejects paths the container shell could split or run, bad kinds, include cycles, unknown includes, duplicates', () => {
    expect(() => parseProfiles(minimal({ actions: [{ kind: 'empty', glob: '/proc/sys/$(reboot)' }] }))).toThrow();
    expect(() => parseProfiles(minimal({ actions: [{ kind: 'empty', glob: '/a b' }] }))).toThrow();
    expect(() => parseProfiles(minimal({ actions: [{ kind: 'tmpfs', path: '/sys/*' }] }))).toThrow();
    expect(() => parseProfiles(minimal({ actions: [{ kind: 'delete', path: '/x' }] }))).toThrow();
    expect(() => parseProfiles(minimal({ emptied: ['relative/path'] }))).toThrow();
    expect(() => parseProfiles(minimal({ include: ['x'] }))).toThrow(/cycle/);
    expect(() => parseProfiles(minimal({ include: ['nope'] }))).toThrow(/unknown profile nope/);
    expect(() => parseProfiles({ profiles: [...minimal({}).profiles, ...minimal({}).profiles] })).toThrow(/twice/);
    expect(() => parseProfiles(minimal({ expect: { stock: { fails: false } } }))).toThrow();
    // container lines: one LXC key = value, nothing that could end the line or run a command
    expect(parseProfiles(minimal({ container: { lxc: ['lxc.mount.auto = sys:mixed'] } }))[0]!.lxc).toEqual(['lxc.mount.auto = sys:mixed']);
    expect(() => parseProfiles(minimal({ container: { lxc: ['lxc.mount.auto = sys:mixed\nlxc.init.cmd = /bin/sh'] } }))).toThrow(/LXC line/);
    expect(() => parseProfiles(minimal({ container: { lxc: ['lxc.hook.pre-start = /bin/sh -c "reboot"'] } }))).toThrow(/LXC line/);
    expect(() => parseProfiles(minimal({ container: { lxc: ['mount.auto = sys:ro'] } }))).toThrow(/LXC line/);
    expect(() => parseProfiles(minimal({ container: { lxc: [] } }))).toThrow();
    expect(() => parseProfiles(minimal({ container: {} }))).toThrow(/lxc lines or unprivileged/);
    expect(parseProfiles(minimal({ container: { unprivileged: true } }))[0]!.unprivileged).toBe(true);
    // feature gates: names and booleans only
    expect(() => parseProfiles(minimal({ kubeletConfig: { featureGates: { 'Gate: x': true } } }))).toThrow();
    expect(() => parseProfiles(minimal({ kubeletConfig: { featureGates: { Gate: 'yes' } } }))).toThrow();
  });
});
