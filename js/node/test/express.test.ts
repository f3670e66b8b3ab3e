import { expressApp } from "./support/apps.js";
import { middlewareSuite } from "./support/scenario.js";

middlewareSuite("Express", expressApp);
