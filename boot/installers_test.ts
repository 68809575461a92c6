import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openDatabase } from "../state/db.ts";
import { finishConfig, Installers, templateCandidates } from "./installers.ts";
import { BootRequestError } from "./errors.ts";
import { MachineIdentity } from "./identity.ts";
import { DEFAULT_VARS, mergeVars, shellQuote, templateData } from "./template_data.ts";
import { type MachineConfig, MachineRegistry } from "../state/machines.ts";
import { BootHistory } from "../state/history.ts";
import { emptyInventory } from "../state/inventory.ts";
import { type Mac, mustParseMac } from "../net/mac.ts";
import { LocalStore } from "../content/local.ts";
import { MemoryStore } from "../content/memory.ts";
import { OsCatalog, parseOsToml } from "./catalog.ts";
import { TemplateRenderer, TemplateRenderError } from "./templates.ts";
import { INSTALLER_TEMPLATES } from "../templates/installers/embedded.ts";
import type { ContentStore } from "../content/store.ts";

const EXAMPLES = fileURLToPath(new URL("../examples/tree", import.meta.url));
const GOLDEN = fileURLToPath(new URL("./testdata/golden/installers", import.meta.url));
const INSTALLER_DIR = fileURLToPath(new URL("../templates/installers", import.meta.url));
// Set to rewrite the golden files from what the code renders now (then review the diff).
const UPDATE = Deno.env.get("ASTRALBOOT_UPDATE_GOLDEN") === "1";

// A fixed secret keeps the callback tokens in the golden files stable.
const SECRET = new TextEncoder().encode("golden-secret-0123456789abcdef!!");
const SETTINGS = {
  serverIp: "10.0.0.1",
  baseUrl: "http://10.0.0.1",
  domain: "lab.example",
  secret: SECRET,
};
/** Every request comes from its machine's own address here; boot/identity_test.ts checks that. */
const TRUSTING = new MachineIdentity({
  leaseOf: () => null,
  leaseAt: () => null,
  reservationOf: () => null,
  reservedAt: (ip) => MACHINES.find((m) => m.ip === ip)?.mac ?? null,
  neighbourAt: () => null,
}, { trustAll: true });
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden admin's key";

/** The machines of the golden files: two classes of each OS, and cluster peers. */
const MACHINES: MachineConfig[] = [
  {
    mac: mustParseMac("52:54:00:00:01:01"),
    hostname: "k8s-1",
    ip: "10.0.0.11",
    os: "debian",
    class: "k8s-node",
    vars: { ssh_authorized_keys: [KEY], disk: "/dev/vda" },
  },
  {
    mac: mustParseMac("52:54:00:00:01:02"),
    hostname: "k8s-2",
    ip: "10.0.0.12",
    os: "debian",
    class: "k8s-node",
    vars: {},
  },
  {
    mac: mustParseMac("52:54:00:00:02:01"),
    hostname: "desk-1",
    ip: "10.0.0.21",
    os: "debian",
    class: "desktop",
    vars: { password_hash: "$6$golden$hash", timezone: "Europe/Berlin" },
  },
  {
    mac: mustParseMac("52:54:00:00:03:01"),
    hostname: "etcd-1",
    ip: "10.0.0.31",
    os: "flatcar",
    class: "etcd",
    vars: { ssh_authorized_keys: [KEY] },
  },
  {
    mac: mustParseMac("52:54:00:00:03:02"),
    hostname: "etcd-2",
    ip: "10.0.0.32",
    os: "flatcar",
    class: "etcd",
    vars: {},
  },
  {
    mac: mustParseMac("52:54:00:00:04:01"),
    hostname: "work-1",
    ip: "10.0.0.41",
    os: "flatcar",
    class: "worker",
    vars: {},
  },
  {
    mac: mustParseMac("52:54:00:00:05:01"),
    hostname: "fed-1",
    ip: "10.0.0.51",
    os: "fedora",
    class: "server",
    vars: { ssh_authorized_keys: [KEY], disk: "/dev/sda" },
  },
];

function setup(
  store: ContentStore,
  machines: MachineConfig[] = MACHINES,
  identity: MachineIdentity = TRUSTING,
) {
  const db = openDatabase(":memory:");
  const registry = new MachineRegistry(db, { machines });
  const catalog = new OsCatalog(store);
  const renderer = new TemplateRenderer({ store });
  return {
    registry,
    catalog,
    history: new BootHistory(db),
    installers: new Installers({
      registry,
      catalog,
      renderer,
      server: SETTINGS,
      identity,
    }),
  };
}

Deno.test("golden configs of the example tree, byte for byte", async (t) => {
  const { installers } = setup(new LocalStore(EXAMPLES));
  const cases: [string, string, string, string][] = [
    // host, os, config, template that must have made it
    ["k8s-1", "debian", "preseed", "boot/debian/template/preseed-k8s-node.vto"],
    ["desk-1", "debian", "preseed", "boot/debian/template/preseed.vto"],
    ["k8s-1", "debian", "cloud-config", "templates/installers/cloud-config.vto"],
    ["desk-1", "debian", "cloud-config", "templates/installers/cloud-config.vto"],
    ["etcd-1", "flatcar", "ignition", "templates/installers/ignition.vto"],
    ["work-1", "flatcar", "ignition", "templates/installers/ignition.vto"],
    ["fed-1", "fedora", "kickstart", "templates/installers/kickstart.vto"],
  ];
  if (UPDATE) await Deno.mkdir(GOLDEN, { recursive: true });
  for (const [host, os, name, template] of cases) {
    await t.step(`${host}: ${os} ${name}`, async () => {
      const mac = MACHINES.find((m) => m.hostname === host)!.mac;
      const out = await installers.render({ os, name, mac });
      assert.equal(out.template, template);
      const file = join(GOLDEN, `${host}.${name}${name === "ignition" ? ".json" : ""}`);
      if (UPDATE) await Deno.writeTextFile(file, out.body);
      assert.equal(out.body, await Deno.readTextFile(file));
    });
  }
});

Deno.test("the rendered configs say what the machine and its class asked for", async (t) => {
  const { installers } = setup(new LocalStore(EXAMPLES));
  const render = (host: string, os: string, name: string) =>
    installers.render({ os, name, mac: MACHINES.find((m) => m.hostname === host)!.mac });
  await t.step("preseed: host name, class packages, the callback, the cluster", async () => {
    const body = (await render("k8s-1", "debian", "preseed")).body;
    assert.match(body, /^d-i netcfg\/get_hostname string k8s-1$/m);
    assert.match(body, /^d-i netcfg\/get_domain string lab\.example$/m);
    assert.match(body, /^d-i pkgsel\/include string containerd curl gnupg$/m);
    assert.match(body, /^d-i partman-auto\/disk string \/dev\/vda$/m);
    assert.match(
      body,
      /wget -q -O \/dev\/null http:\/\/10\.0\.0\.1\/api\/machines\/52-54-00-00-01-01\/installed\/[0-9a-f]{32}$/m,
    );
    assert.match(
      body,
      /printf '%s\\n' 'k8s-1 10\.0\.0\.11 52:54:00:00:01:01' 'k8s-2 10\.0\.0\.12 52:54:00:00:01:02'/,
    );
    // The key holds a quote: it must reach the shell as one word.
    assert.ok(body.includes(`echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGolden admin'\\''s key'`));
  });
  await t.step(
    "every preseed line is a complete answer (no template line left blank)",
    async () => {
      for (const host of ["k8s-1", "desk-1"]) {
        const body = (await render(host, "debian", "preseed")).body;
        const lines = body.replace(/\\\n/g, " ").split("\n").filter((l) => l && !l.startsWith("#"));
        for (const line of lines) {
          assert.match(line, /^(d-i|tasksel|popularity-contest) \S+ \S+( .*)?$/, line);
        }
      }
    },
  );
  await t.step(
    "Ignition: spec 3.x, users, hostname file, install unit only when asked",
    async () => {
      const etcd = JSON.parse((await render("etcd-1", "flatcar", "ignition")).body);
      assert.equal(etcd.ignition.version, "3.3.0");
      assert.deepEqual(etcd.passwd.users[0].sshAuthorizedKeys, [KEY]);
      assert.equal(etcd.passwd.users[0].name, "core");
      assert.equal(etcd.storage.files[0].contents.source, "data:,etcd-1.lab.example%0A");
      assert.equal(
        decodeURIComponent(etcd.storage.files[1].contents.source.slice(6)),
        "etcd-1 10.0.0.31 52:54:00:00:03:01\netcd-2 10.0.0.32 52:54:00:00:03:02\n",
      );
      assert.match(
        etcd.systemd.units[0].contents,
        /ExecStart=\/usr\/bin\/flatcar-install -d \/dev\/sda/,
      );
      const worker = JSON.parse((await render("work-1", "flatcar", "ignition")).body);
      assert.deepEqual(worker.systemd.units, []);
    },
  );
  await t.step("kickstart: crypted or locked user, ssh key, class packages", async () => {
    const body = (await render("fed-1", "fedora", "kickstart")).body;
    assert.match(body, /^user --name=astral --groups=wheel --lock$/m);
    assert.match(body, /^sshkey --username=astral "ssh-ed25519 .*"$/m);
    assert.match(body, /^ignoredisk --only-use=sda$/m);
    assert.match(body, /^%packages\n@core\ncockpit\n%end$/m);
  });
});

Deno.test("vars: defaults < os.toml < class < [[machine]]", async (t) => {
  const os = {
    name: "x",
    classes: [{ name: "c", title: "C", vars: { timezone: "class", tasks: "class" } }],
    vars: { timezone: "os", tasks: "os", user: "os" },
  };
  const machine = (cls: string | null, vars: Record<string, unknown>) => ({
    mac: mustParseMac("52:54:00:00:00:01"),
    hostname: "h",
    ip: null,
    os: "x",
    pinned: true,
    class: cls,
    state: "chosen" as const,
    vars,
    configured: true,
    matched_by: "mac" as const,
    uuid: null,
    inventory: emptyInventory(),
    first_seen: null,
    last_seen: null,
    installed_at: null,
    install_gen: 0,
  });
  const cases: [string, string | null, Record<string, unknown>, Record<string, unknown>][] = [
    ["no class", null, {}, { timezone: "os", tasks: "os", user: "os", locale: "en_US.UTF-8" }],
    ["class over os", "c", {}, { timezone: "class", tasks: "class", user: "os" }],
    ["machine over class", "c", { timezone: "m" }, { timezone: "m", tasks: "class" }],
  ];
  for (const [name, cls, mvars, expect] of cases) {
    await t.step(name, () => {
      const data = templateData(SETTINGS, machine(cls, mvars), os);
      const vars = data.vars as Record<string, unknown>;
      for (const [k, v] of Object.entries(expect)) assert.equal(vars[k], v, k);
    });
  }
  await t.step("a class of another OS is not applied", () => {
    const m = { ...machine("c", {}), os: "other" };
    const data = templateData(SETTINGS, m, os);
    assert.equal(data.class_name, "");
    assert.equal((data.vars as Record<string, unknown>).timezone, "os");
  });
  await t.step("merging copies: the defaults are never changed", () => {
    const merged = mergeVars(DEFAULT_VARS, { packages: ["a"] });
    (merged.ssh_authorized_keys as string[]).push("x");
    assert.deepEqual(DEFAULT_VARS.ssh_authorized_keys, []);
    assert.deepEqual(DEFAULT_VARS.packages, []);
    // Nested tables and arrays of tables are copies too; a date keeps its value.
    const layer = { net: { dns: ["a"] }, users: [{ name: "u" }], when: new Date(0) };
    const deep = mergeVars(layer) as typeof layer;
    deep.net.dns.push("b");
    deep.users[0]!.name = "v";
    assert.deepEqual(layer, { net: { dns: ["a"] }, users: [{ name: "u" }], when: new Date(0) });
    assert.notEqual(deep.when, layer.when);
    assert.equal(deep.when.getTime(), 0);
  });
  await t.step("os.toml top-level vars are parsed", () => {
    const { meta } = parseOsToml('vars = { mirror = "m" }\n', "x/os.toml");
    assert.deepEqual(meta.vars, { mirror: "m" });
    assert.throws(() => parseOsToml('vars = "m"\n', "x/os.toml"), /x\/os\.toml:1: key "vars"/);
  });
});

Deno.test("errors name the template, line and what is missing", async (t) => {
  const mac = mustParseMac("52:54:00:00:09:01");
  const machines = [{ mac, hostname: "e", os: "bad", class: "c", vars: {} }];
  const store = new MemoryStore({
    "boot/bad/os.toml": '[classes.c]\ntitle = "C"\n[classes.d]\n',
    "boot/bad/template/start.vto": "#!ipxe\n",
    "boot/bad/template/preseed.vto": "line one\nd-i x string {{ vars.nope }}\n",
    "boot/bad/template/ignition.vto": '{ "ignition": { "version": "3.3.0" }, }',
    "boot/bad/template/ignition-c.vto": '{ "ignition": {}\n}',
    "boot/bad/template/cloud-config.vto": "hostname: {{ hostname }}\n",
    "boot/other/template/start.vto": "#!ipxe\n",
  });
  const { installers, registry } = setup(store, machines);
  const cases: [string, Parameters<Installers["render"]>[0], RegExp, unknown][] = [
    [
      "missing variable",
      { os: "bad", name: "preseed", mac },
      /^boot\/bad\/template\/preseed\.vto:2:\d+: "vars\.nope" is not defined/,
      TemplateRenderError,
    ],
    [
      "class template wins, Ignition without a version",
      { os: "bad", name: "ignition", mac },
      /boot\/bad\/template\/ignition-c\.vto: rendered Ignition has no ignition\.version 3\.x/,
      TemplateRenderError,
    ],
    [
      "cloud-config without its header",
      { os: "bad", name: "cloud-config", mac },
      /cloud-config\.vto: rendered cloud-config must start with a "#cloud-config" line/,
      TemplateRenderError,
    ],
    [
      "unknown OS",
      { os: "nope", name: "preseed", mac },
      /no OS nope in the tree/,
      BootRequestError,
    ],
    [
      "unknown template",
      { os: "bad", name: "nothing", mac },
      /no template nothing for bad/,
      BootRequestError,
    ],
    [
      "no MAC and an unknown address",
      { os: "bad", name: "preseed", ip: "10.9.9.9" },
      /no machine known at 10\.9\.9\.9/,
      BootRequestError,
    ],
  ];
  for (const [name, req, message, type] of cases) {
    await t.step(name, async () => {
      await assert.rejects(installers.render(req), (err: Error) => {
        assert.ok(err instanceof (type as typeof Error), err.name);
        assert.match(err.message, message);
        return true;
      });
    });
  }
  await t.step("Ignition that is not JSON says where", async () => {
    const plain = mustParseMac("52:54:00:00:09:02");
    registry.seen(plain, "10.0.0.92");
    await assert.rejects(
      installers.render({ os: "bad", name: "ignition", mac: plain }),
      /ignition\.vto: rendered Ignition is not JSON \(output line 1, column \d+\)/,
    );
  });
  await t.step("a class the os.toml does not declare is a conflict", async () => {
    const r = setup(store, [{ mac, hostname: "e", os: "bad", class: "zz", vars: {} }]);
    await assert.rejects(r.installers.render({ os: "bad", name: "preseed", mac }), (e: Error) => {
      assert.ok(e instanceof BootRequestError);
      assert.equal(e.status, 409);
      assert.match(
        e.message,
        /class zz, which boot\/bad\/os\.toml does not declare \(classes: c, d\)/,
      );
      return true;
    });
  });
  await t.step("a failed render does not mark the machine installing", () => {
    assert.equal(registry.get(mac)!.state, "chosen");
  });
});

Deno.test("serving a config marks the machine installing; the machine is found by address", async (t) => {
  const mac = mustParseMac("52:54:00:00:0a:01");
  // Its lease says who asks from 10.0.0.77.
  const leased = new MachineIdentity({
    leaseOf: (m) => m === mac ? "10.0.0.77" : null,
    leaseAt: (ip) => ip === "10.0.0.77" ? mac : null,
    reservationOf: () => null,
    reservedAt: () => null,
    neighbourAt: () => null,
  }, { trustAll: true });
  const { installers, registry } = setup(new LocalStore(EXAMPLES), [], leased);
  registry.choose(mac, "debian", "minimal");
  await t.step("a preseed fetched without ?mac= is matched by the address", async () => {
    const out = await installers.render({ os: "debian", name: "preseed", ip: "10.0.0.77" });
    assert.equal(out.machine.mac, mac);
    assert.equal(out.machine.state, "installing");
    assert.equal(out.contentType, "text/plain; charset=utf-8");
    assert.match(out.body, /^tasksel tasksel\/first multiselect ssh-server$/m);
    assert.match(out.body, /^d-i netcfg\/get_hostname string node-525400000a01$/m);
  });
  await t.step("the answer says what was served, for the history", async () => {
    const out = await installers.render({ os: "debian", name: "preseed", ip: "10.0.0.77" });
    assert.equal(out.what, "debian/minimal preseed");
    assert.equal(out.template, "boot/debian/template/preseed.vto");
  });
  await t.step("an unseen MAC in ?mac= becomes a known machine", async () => {
    const other = mustParseMac("52:54:00:00:0a:02");
    const out = await installers.render({ os: "debian", name: "cloud-config", mac: other });
    assert.equal(out.contentType, "text/cloud-config; charset=utf-8");
    assert.equal(registry.get(other)!.state, "installing");
  });
});

Deno.test("localBoot: the local-disk script only for installed machines", async (t) => {
  const mac = mustParseMac("52:54:00:00:0b:01");
  const { installers: inst, registry } = setup(new LocalStore(EXAMPLES), [
    { mac, hostname: "k", os: "debian", class: "minimal", vars: {} },
  ]);
  // As /boot.ipxe asks: for the machine the registry knows now.
  const installers = {
    localBoot: (m: Mac, ip?: string) => {
      registry.seen(m, ip);
      return inst.localBoot(registry.get(m)!, ip);
    },
  };
  await t.step("chosen and installing machines get null", async () => {
    assert.equal(await installers.localBoot(mac), null);
    registry.installing(mac);
    assert.equal(await installers.localBoot(mac), null);
    assert.equal(await installers.localBoot(mustParseMac("52:54:00:00:0b:99")), null);
  });
  await t.step("after the callback: sanboot on BIOS, exit otherwise", async () => {
    registry.installed(mac, "10.0.0.5");
    const script = (await installers.localBoot(mac, "10.0.0.5"))!;
    assert.equal(
      script,
      [
        "#!ipxe",
        "# Astral Boot: 52:54:00:00:0b:01 is installed (debian/minimal), booting its local disk",
        "# To install it again: astralboot machine reinstall 52:54:00:00:0b:01",
        "iseq ${platform} pcbios || goto _exit",
        "sanboot --no-describe --drive 0x80 || goto _exit",
        ":_exit",
        "exit",
        "",
      ].join("\n"),
    );
  });
  await t.step("an installed machine with no OS still gets the script", async () => {
    const bare = mustParseMac("52:54:00:00:0b:02");
    registry.installed(bare);
    assert.match(
      (await installers.localBoot(bare))!,
      /^# Astral Boot: 52:54:00:00:0b:02 is installed, booting/m,
    );
  });
  await t.step("reinstall takes it away again", async () => {
    registry.reinstall(mac);
    assert.equal(await installers.localBoot(mac), null);
  });
});

Deno.test("helpers", async (t) => {
  const quotes: [string, string][] = [
    ["plain", "'plain'"],
    ["it's", `'it'\\''s'`],
    ['$HOME `x` "y"', `'$HOME \`x\` "y"'`],
    ["", "''"],
  ];
  for (const [input, expect] of quotes) {
    await t.step(`shellQuote ${JSON.stringify(input)}`, async () => {
      assert.equal(shellQuote(input), expect);
      const echo = await new Deno.Command("sh", { args: ["-c", `printf %s ${expect}`] }).output();
      assert.equal(new TextDecoder().decode(echo.stdout), input);
    });
  }
  await t.step("templateCandidates", () => {
    assert.deepEqual(templateCandidates("preseed", "k8s"), ["preseed-k8s", "preseed"]);
    assert.deepEqual(templateCandidates("preseed", null), ["preseed"]);
  });
  await t.step("finishConfig prints Ignition canonically and leaves others alone", () => {
    assert.equal(
      finishConfig("ignition", '{"ignition":{"version":"3.4.0"}}', "f"),
      '{\n  "ignition": {\n    "version": "3.4.0"\n  }\n}\n',
    );
    assert.equal(finishConfig("preseed", "x", "f"), "x");
  });
});

Deno.test("the embedded installer templates are exactly the .vto files in templates/installers/", async () => {
  const onDisk: Record<string, string> = {};
  for await (const e of Deno.readDir(INSTALLER_DIR)) {
    if (e.isFile && e.name.endsWith(".vto")) {
      onDisk[e.name] = await Deno.readTextFile(join(INSTALLER_DIR, e.name));
    }
  }
  assert.deepEqual({ ...INSTALLER_TEMPLATES }, onDisk);
});
