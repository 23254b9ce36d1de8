import init from "./tabiji_editor.js";
init();
