from tf_console.cli import run

run()
