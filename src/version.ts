// The project's release identity, shared by every mode of the binary.
export const VERSION = "0.1.0";
/** The Spiderpool API this release is compatible with. */
export const COMPATIBLE_API = "spiderpool.spidernet.io/v2beta1";
