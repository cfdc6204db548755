export const PACKAGE = "@parley/cli";
