export const PACKAGE = "@parley/signal";
