"""The code tool the model is offered, named and described for the kernel's language."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# How languages are spelled in prose; kernelspecs write them in any case ("R", "bash").
_DISPLAY = {
    "python": "Python",
    "r": "R",
    "bash": "Bash",
    "typescript": "TypeScript",
    "javascript": "JavaScript",
}


@dataclass(frozen=True)
class CodeTool:
    """The one tool of the loop: its name and the language it runs."""

    name: str
    language: str

    @classmethod
    def for_language(cls, language: str) -> CodeTool:
        """``python`` for Python (the name the agent always had), else ``run_<language>``."""
        key = language.strip().lower() or "python"
        display = _DISPLAY.get(key, language.strip() or "Python")
        if key == "python":
            return cls("python", display)
        return cls("run_" + re.sub(r"[^a-z0-9]+", "_", key).strip("_"), display)

    def schema(self) -> dict[str, Any]:
        """The tool in the Chat Completions format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": (
                    f"Run {self.language} code in a persistent {self.language} session (a "
                    "Jupyter kernel) and return stdout, stderr, the value of the last "
                    "expression, errors, and any images produced."
                ),
                "parameters": {
                    "type": "object",
                    "properties": {"code": {"type": "string", "description": "The code to run."}},
                    "required": ["code"],
                },
            },
        }

    def system_prompt(self) -> str:
        """The default system prompt for a kernel of this language."""
        if self.name == "python":
            extras = (
                "pandas, numpy and matplotlib are usually installed; plots shown with "
                "plt.show() are captured. "
            )
        else:
            extras = "Plots and rich output the kernel displays are captured. "
        return (
            f"You are a data analyst with a persistent {self.language} kernel.\n"
            f"Use the `{self.name}` tool to run {self.language} code: variables and files "
            "persist between calls.\n"
            f"{extras}Files the user uploaded are in the current working directory. Inspect "
            "data before drawing conclusions, keep printed output short, and finish with a "
            "clear answer."
        )
