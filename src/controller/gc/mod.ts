// The controller's IP garbage collector as one component: `new IpGc({...}).start()`, `stop()`, `scanAll()`,
// `ready()`, and `gcHandler` for `/v1/ipam/gc_ips` on the health port; `ipGcComponent` runs it in the controller
// process. The rules are in src/ipam/gc.ts.

export { type IpGcComponent, ipGcComponent } from "./component.ts";
export {
  defaultGcConfig,
  GC_ENV,
  type GcConfig,
  GcConfigError,
  gcConfigFrom,
  type GcConfigMapFlags,
} from "./config.ts";
export {
  type DeferredIP,
  GcDisabledError,
  type GcHooks,
  IpGc,
  type IpGcOptions,
  type ReleasedIP,
  type ScanReport,
  type Snapshot,
} from "./gc.ts";
export {
  type Access,
  apiServerAuthorizer,
  type Authorizer,
  type Caller,
  GC_ACCESS,
  GC_PATH,
  gcHandler,
} from "./http.ts";
export { GcMetrics, type ScanTrigger } from "./metrics.ts";
