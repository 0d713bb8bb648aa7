// Runs the spiderpool IPAM plugin the way main.ts does, for tests that spawn it through `deno run`.
import { main } from "../../src/plugins/spiderpool.ts";

Deno.exit(await main());
