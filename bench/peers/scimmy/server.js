// A SCIM 2.0 server on SCIMMY + scimmy-routers (Express), as its documentation builds one.
// SCIMMY ships no storage: resources live in Maps in this process, as in SCIMMY's examples.
// Usage: node server.js PORT TOKEN
import crypto from "node:crypto";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const port = Number(process.argv[2] ?? 8090);
const token = process.argv[3] ?? "bench";

function store(kind) {
    const items = new Map();
    return {
        ingress: (resource, instance) => {
            const now = new Date().toISOString();
            if (resource.id) {
                const old = items.get(resource.id);
                if (!old) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
                const next = {...instance, id: resource.id, meta: {...old.meta, lastModified: now}};
                items.set(resource.id, next);
                return next;
            }
            const id = crypto.randomUUID();
            const created = {...instance, id, meta: {resourceType: kind, created: now, lastModified: now}};
            items.set(id, created);
            return created;
        },
        egress: (resource) => {
            if (resource.id) {
                const found = items.get(resource.id);
                if (!found) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
                return found;
            }
            const all = [...items.values()];
            return resource.filter ? resource.filter.match(all) : all;
        },
        degress: (resource) => {
            if (!items.delete(resource.id)) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
        },
    };
}

SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser);
for (const [R, kind] of [[SCIMMY.Resources.User, "User"], [SCIMMY.Resources.Group, "Group"]]) {
    const s = store(kind);
    SCIMMY.Resources.declare(R).ingress(s.ingress).egress(s.egress).degress(s.degress);
}

const app = express();
app.get("/healthz", (req, res) => res.json({status: "ok"}));
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    docUri: "https://example.invalid/auth",
    handler: (req) => {
        if (req.header("Authorization") !== `Bearer ${token}`) throw new Error("Authorization failed");
        return "bench";
    },
}));
app.listen(port, "127.0.0.1", () => console.error(`scimmy peer on http://127.0.0.1:${port}/scim/v2`));
